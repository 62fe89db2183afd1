//! `NameFilter`: keeps or drops events by their exact name, as edX's
//! `NameWhitelistProcessor` does.

use std::collections::HashSet;

use tidings_event::Event;

use crate::{FilterMode, Interest, Processor, ProcessorError, Verdict};

/// Keeps (allowlist) or drops (blocklist) the events whose name is exactly
/// one of its names: unlike a [`RegexFilter`](crate::RegexFilter), whose
/// patterns match the start of a name with `.` as a wildcard,
/// `edx.course.enrollment` here matches that name alone, not
/// `edx.course.enrollment.activated`. The name alone decides, so a tree
/// asks it once per name ([`Interest`]).
///
/// ```
/// use serde_json::json;
/// use tidings_event::{Event, EventName};
/// use tidings_processors::{FilterMode, NameFilter, Processor, Verdict};
///
/// let filter = NameFilter::new(FilterMode::Allowlist, ["edx.course.enrollment"]);
/// let mut kept = Event::new(EventName::new("edx.course.enrollment")?, json!({}));
/// let mut longer = Event::new(EventName::new("edx.course.enrollment.activated")?, json!({}));
/// assert_eq!(filter.process(&mut kept)?, Verdict::Keep);
/// assert_eq!(filter.process(&mut longer)?, Verdict::Drop);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct NameFilter {
    mode: FilterMode,
    names: HashSet<String>,
}

impl NameFilter {
    /// A filter keeping (`Allowlist`) or dropping (`Blocklist`) `names`.
    pub fn new(mode: FilterMode, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            mode,
            names: names.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether an event named `name` goes on.
    #[must_use]
    pub fn keeps(&self, name: &str) -> bool {
        self.names.contains(name) == (self.mode == FilterMode::Allowlist)
    }
}

impl Processor for NameFilter {
    fn process(&self, event: &mut Event) -> Result<Verdict, ProcessorError> {
        Ok(Verdict::keep_if(self.keeps(event.name().as_str())))
    }

    /// The name alone decides: [`Interest::Always`] or [`Interest::Never`].
    fn interest(&self, name: &str) -> Interest {
        Interest::keep_if(self.keeps(name))
    }

    /// `name_filter allowlist ["a.b", "c.d"]`, names sorted.
    fn describe(&self) -> String {
        let mut names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        names.sort_unstable();
        format!("name_filter {} {names:?}", self.mode.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_whole_and_the_mode_decides() {
        let allow = NameFilter::new(FilterMode::Allowlist, ["a.b", "c"]);
        assert!(allow.keeps("a.b") && allow.keeps("c"));
        assert!(!allow.keeps("a.b.c") && !allow.keeps("a") && !allow.keeps("axb"));
        assert_eq!(allow.interest("a.b"), Interest::Always);
        assert_eq!(allow.interest("a.bc"), Interest::Never);

        let block = NameFilter::new(FilterMode::Blocklist, ["a.b"]);
        assert!(!block.keeps("a.b"));
        assert!(block.keeps("a.b.c"));
        assert_eq!(block.interest("a.b"), Interest::Never);
        assert_eq!(block.interest("z"), Interest::Always);
    }
}
