//! The trace API is reachable where users have named it: at the crate
//! root, in `otlpx::trace` (its home), and in `otlpx::record` (its home
//! before `trace/`), each path the same type. Compiling is most of the
//! test; the asserts say the three are one type, not look-alikes.

use std::any::TypeId;

macro_rules! same_type_at_every_path {
    ($($name:ident $(<$lt:lifetime>)?),+ $(,)?) => {$(
        assert_eq!(
            TypeId::of::<otlpx::record::$name $(<$lt>)?>(),
            TypeId::of::<otlpx::trace::$name $(<$lt>)?>(),
            stringify!($name),
        );
        assert_eq!(
            TypeId::of::<otlpx::$name $(<$lt>)?>(),
            TypeId::of::<otlpx::trace::$name $(<$lt>)?>(),
            stringify!($name),
        );
    )+};
}

#[test]
fn trace_types_keep_their_record_paths() {
    same_type_at_every_path!(
        ActiveSpan<'static>,
        DetachedSpan,
        Event<'static>,
        FinishedSpan<'static>,
        Link<'static>,
        Span<'static>,
        SpanKind,
        Status<'static>,
        Tracer,
    );
    // Two lifetimes: written out.
    assert_eq!(
        TypeId::of::<otlpx::record::SpanBuilder<'static, 'static>>(),
        TypeId::of::<otlpx::trace::SpanBuilder<'static, 'static>>(),
    );
    assert_eq!(
        TypeId::of::<otlpx::SpanBuilder<'static, 'static>>(),
        TypeId::of::<otlpx::trace::SpanBuilder<'static, 'static>>(),
    );
    assert_eq!(
        TypeId::of::<otlpx::record::RecordError>(),
        TypeId::of::<otlpx::RecordError>(),
    );
}
