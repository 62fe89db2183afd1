//! `Topology`: what a built backend tree holds, for introspection.

use std::fmt;

/// What a built backend is and what it holds: its kind, its settings, the
/// descriptions of its processors and, by name, the backends it hands
/// events to. Given by [`Backend::topology`](crate::Backend::topology)
/// (edX's `get_backend` and a tree's listing); its `Display` is an indented
/// tree, as `tidings check` prints a config:
///
/// ```text
/// router
///   processor [0] regex_filter allowlist ["edx\\."]
///   audit: sink audit queue_capacity=10000 when_full=drop_newest
///   public: async_router queue_capacity=10000 when_full=drop_newest processors_on=caller
///     processor [0] property_allowlist allowed ["url"]
///     mirror: RecordingBackend
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Topology {
    /// What the backend is: `router`, `async_router`, `sink`, or the name
    /// of its type.
    pub kind: String,
    /// Its settings, on one line; empty when it has none to show.
    pub detail: String,
    /// Its processors' descriptions, in the order they run.
    pub processors: Vec<String>,
    /// The backends it hands events to, by name, in delivery order.
    pub backends: Vec<(String, Topology)>,
}

impl Topology {
    /// A backend of kind `kind`, holding nothing.
    #[must_use]
    pub fn new(kind: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            ..Self::default()
        }
    }

    /// A leaf named after the type `T` (its path left out).
    #[must_use]
    pub fn of_type<T: ?Sized>() -> Self {
        let full = std::any::type_name::<T>();
        // `a::b::Type<c::D>` → `Type<c::D>`: the path before any generics.
        let end = full.find('<').unwrap_or(full.len());
        let start = full[..end].rfind("::").map_or(0, |at| at + 2);
        Self::new(&full[start..])
    }

    /// With `detail` as its settings.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    /// The backend named `name` directly below this one.
    #[must_use]
    pub fn backend(&self, name: &str) -> Option<&Topology> {
        self.backends
            .iter()
            .find_map(|(n, topology)| (n == name).then_some(topology))
    }

    /// The backend at `path`, names joined by `.` (`public.mirror`); the
    /// empty path is this backend.
    #[must_use]
    pub fn find(&self, path: &str) -> Option<&Topology> {
        if path.is_empty() {
            return Some(self);
        }
        let (first, rest) = path.split_once('.').unwrap_or((path, ""));
        self.backend(first)?.find(rest)
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        let pad = "  ".repeat(depth + 1);
        for (at, processor) in self.processors.iter().enumerate() {
            writeln!(f, "{pad}processor [{at}] {processor}")?;
        }
        for (name, backend) in &self.backends {
            write!(f, "{pad}{name}: ")?;
            backend.head(f)?;
            backend.write(f, depth + 1)?;
        }
        Ok(())
    }

    fn head(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            writeln!(f, "{}", self.kind)
        } else {
            writeln!(f, "{} {}", self.kind, self.detail)
        }
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.head(f)?;
        self.write(f, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_type_is_named_without_its_path() {
        assert_eq!(Topology::of_type::<Topology>().kind, "Topology");
        assert_eq!(
            Topology::of_type::<std::sync::Arc<Topology>>().kind,
            "Arc<tidings_core::topology::Topology>"
        );
        assert_eq!(Topology::of_type::<str>().kind, "str");
    }

    #[test]
    fn the_display_is_an_indented_tree_and_paths_find_nodes() {
        let mut leaf = Topology::new("sink").with_detail("audit");
        leaf.backends
            .push(("dead_letter".into(), Topology::new("console")));
        let mut inner = Topology::new("async_router");
        inner.processors.push("scrub".into());
        inner.backends.push(("audit".into(), leaf));
        let mut root = Topology::new("router");
        root.processors.push("filter a".into());
        root.processors.push("filter b".into());
        root.backends.push(("public".into(), inner));
        assert_eq!(
            root.to_string(),
            "router\n  processor [0] filter a\n  processor [1] filter b\n  public: async_router\n    processor [0] scrub\n    audit: sink audit\n      dead_letter: console\n"
        );
        assert_eq!(
            root.find("public.audit.dead_letter").unwrap().kind,
            "console"
        );
        assert_eq!(root.find("").unwrap().kind, "router");
        assert!(root.find("public.nothing").is_none());
        assert!(root.find("public.audit.dead_letter.deeper").is_none());
    }
}
