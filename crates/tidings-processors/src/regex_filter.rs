//! `RegexFilter`: allow or block events by name, matching from its start.

use regex::Regex;
use regex_syntax::hir::{Hir, HirKind, Look};
use tidings_event::Event;

use crate::{Interest, Processor, ProcessorError, Verdict};

/// Whether a [`RegexFilter`]'s patterns list the names to keep or to drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterMode {
    /// Keep only events whose name matches a pattern.
    Allowlist,
    /// Drop events whose name matches a pattern.
    Blocklist,
}

/// A pattern that is not a valid regular expression.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid regex {pattern:?} (pattern {index}): {source}")]
pub struct PatternError {
    /// Position of the pattern in the list.
    pub index: usize,
    /// The pattern.
    pub pattern: String,
    /// What the regex parser reported.
    #[source]
    pub source: regex::Error,
}

/// Keeps or drops events by matching their names against regular
/// expressions, anchored at the start of the name like Python's `re.match`
/// (edX semantics): `edx\.` matches `edx.course` but not `xedx.course`, and
/// `edx` matches `edxyz` too (add `$` to anchor the end).
///
/// An allowlist with no patterns drops everything; a blocklist with none
/// keeps everything.
#[derive(Debug, Clone)]
pub struct RegexFilter {
    mode: FilterMode,
    patterns: Vec<String>,
    matcher: Matcher,
}

/// How names are matched: most filters list plain prefixes such as
/// `edx\.`, which a `starts_with` test answers faster than a regex engine.
#[derive(Debug, Clone)]
enum Matcher {
    Prefixes(Vec<String>),
    Regex(Regex),
}

/// The literal a pattern matches at the start of a name, if the pattern is
/// nothing more than an (optionally `^`-anchored) literal.
fn literal_prefix(pattern: &str) -> Option<String> {
    let hir = regex_syntax::parse(pattern).ok()?;
    let literal = |hir: &Hir| match hir.kind() {
        HirKind::Empty => Some(Vec::new()),
        HirKind::Literal(literal) => Some(literal.0.to_vec()),
        _ => None,
    };
    let bytes = match hir.kind() {
        HirKind::Concat(parts) => match parts.as_slice() {
            [start, rest] if matches!(start.kind(), HirKind::Look(Look::Start)) => literal(rest)?,
            _ => return None,
        },
        HirKind::Look(Look::Start) => Vec::new(),
        _ => literal(&hir)?,
    };
    String::from_utf8(bytes).ok()
}

impl RegexFilter {
    /// A filter keeping only names that match one of `patterns`.
    ///
    /// # Errors
    ///
    /// [`PatternError`] for the first pattern that is not a valid regex.
    pub fn allowlist<I>(patterns: I) -> Result<Self, PatternError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::new(FilterMode::Allowlist, patterns)
    }

    /// A filter dropping names that match one of `patterns`.
    ///
    /// # Errors
    ///
    /// [`PatternError`] for the first pattern that is not a valid regex.
    pub fn blocklist<I>(patterns: I) -> Result<Self, PatternError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::new(FilterMode::Blocklist, patterns)
    }

    /// A filter in `mode` over `patterns`.
    ///
    /// # Errors
    ///
    /// [`PatternError`] for the first pattern that is not a valid regex.
    pub fn new<I>(mode: FilterMode, patterns: I) -> Result<Self, PatternError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let patterns: Vec<String> = patterns.into_iter().map(Into::into).collect();
        // Each pattern must compile alone: wrapping an unbalanced one such as
        // `a)|(b` in a group could otherwise turn it into a valid regex.
        for (index, pattern) in patterns.iter().enumerate() {
            Regex::new(pattern).map_err(|source| PatternError {
                index,
                pattern: pattern.clone(),
                source,
            })?;
        }
        let prefixes: Option<Vec<String>> = patterns.iter().map(|p| literal_prefix(p)).collect();
        let matcher = match prefixes {
            Some(prefixes) => Matcher::Prefixes(prefixes),
            None => {
                let alternation: Vec<String> =
                    patterns.iter().map(|p| format!("(?:{p})")).collect();
                let combined = format!("^(?:{})", alternation.join("|"));
                Matcher::Regex(Regex::new(&combined).map_err(|source| PatternError {
                    index: 0,
                    pattern: combined,
                    source,
                })?)
            }
        };
        Ok(Self {
            mode,
            patterns,
            matcher,
        })
    }

    /// The mode.
    #[must_use]
    pub fn mode(&self) -> FilterMode {
        self.mode
    }

    /// The patterns, as given.
    #[must_use]
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether `name` matches one of the patterns (from its start).
    #[must_use]
    pub fn matches(&self, name: &str) -> bool {
        match &self.matcher {
            Matcher::Prefixes(prefixes) => prefixes.iter().any(|p| name.starts_with(p.as_str())),
            Matcher::Regex(regex) => regex.is_match(name),
        }
    }
}

impl RegexFilter {
    /// Whether events named `name` pass.
    fn keeps(&self, name: &str) -> bool {
        self.matches(name) == (self.mode == FilterMode::Allowlist)
    }
}

impl Processor for RegexFilter {
    fn process(&self, event: &mut Event) -> Result<Verdict, ProcessorError> {
        Ok(Verdict::keep_if(self.keeps(event.name())))
    }

    /// The name alone decides: [`Interest::Always`] or [`Interest::Never`].
    fn interest(&self, name: &str) -> Interest {
        Interest::keep_if(self.keeps(name))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tidings_event::EventName;

    use super::*;

    fn verdict(filter: &RegexFilter, name: &'static str) -> Verdict {
        let mut event = Event::new(EventName::new(name).unwrap(), json!({}));
        filter.process(&mut event).unwrap()
    }

    #[test]
    fn the_interest_of_a_name_agrees_with_the_verdict() {
        let allow = RegexFilter::allowlist([r"edx\.", r"nav.*\.request$"]).unwrap();
        let block = RegexFilter::blocklist([r"debug\."]).unwrap();
        for name in ["edx.course", "navigation.request", "debug.tick", "other"] {
            for filter in [&allow, &block] {
                let expected = match verdict(filter, name) {
                    Verdict::Keep => Interest::Always,
                    Verdict::Drop => Interest::Never,
                };
                assert_eq!(filter.interest(name), expected, "{name} {filter:?}");
            }
        }
        assert_eq!(allow.interest("other"), Interest::Never);
        assert_eq!(block.interest("other"), Interest::Always);
    }

    #[test]
    fn allowlist_matches_from_the_start_like_re_match() {
        let f = RegexFilter::allowlist([r"edx\.", r"navigation\."]).unwrap();
        assert_eq!(verdict(&f, "edx.course"), Verdict::Keep);
        assert_eq!(verdict(&f, "navigation.request"), Verdict::Keep);
        assert_eq!(verdict(&f, "xedx.course"), Verdict::Drop);
        assert_eq!(verdict(&f, "debug.edx.thing"), Verdict::Drop);
    }

    #[test]
    fn patterns_are_not_anchored_at_the_end() {
        let f = RegexFilter::allowlist(["edx"]).unwrap();
        assert_eq!(verdict(&f, "edxyz"), Verdict::Keep);
        let exact = RegexFilter::allowlist(["edx$"]).unwrap();
        assert_eq!(verdict(&exact, "edxyz"), Verdict::Drop);
        assert_eq!(verdict(&exact, "edx"), Verdict::Keep);
    }

    #[test]
    fn explicit_caret_and_alternation_inside_a_pattern_stay_anchored() {
        let f = RegexFilter::allowlist([r"^a\.|b\."]).unwrap();
        assert_eq!(verdict(&f, "a.x"), Verdict::Keep);
        assert_eq!(verdict(&f, "b.x"), Verdict::Keep);
        assert_eq!(
            verdict(&f, "xb.x"),
            Verdict::Drop,
            "the second branch is anchored too"
        );
    }

    #[test]
    fn blocklist_drops_matches_and_keeps_the_rest() {
        let f = RegexFilter::blocklist([r"edx\.internal\."]).unwrap();
        assert_eq!(verdict(&f, "edx.internal.tick"), Verdict::Drop);
        assert_eq!(verdict(&f, "edx.course"), Verdict::Keep);
        assert_eq!(verdict(&f, "my.edx.internal.x"), Verdict::Keep);
    }

    #[test]
    fn empty_lists_keep_or_drop_everything() {
        assert_eq!(
            verdict(&RegexFilter::allowlist(Vec::<String>::new()).unwrap(), "a"),
            Verdict::Drop
        );
        assert_eq!(
            verdict(&RegexFilter::blocklist(Vec::<String>::new()).unwrap(), "a"),
            Verdict::Keep
        );
    }

    #[test]
    fn invalid_patterns_are_rejected_when_built_with_their_index() {
        let err = RegexFilter::allowlist([r"ok\.", r"bad("]).unwrap_err();
        assert_eq!(err.index, 1);
        assert_eq!(err.pattern, "bad(");
        assert!(
            err.to_string()
                .starts_with("invalid regex \"bad(\" (pattern 1): "),
            "{err}"
        );
    }

    #[test]
    fn literal_and_regex_patterns_agree() {
        let names = [
            "edx.a",
            "edx",
            "edxa",
            "xedx.a",
            "",
            "navigation.request",
            "nav",
            "é.x",
        ];
        let literal = RegexFilter::allowlist([r"edx\.", r"^navigation\.", "é"]).unwrap();
        assert!(matches!(literal.matcher, Matcher::Prefixes(_)));
        // The same patterns, forced through the regex engine by a non-literal one.
        let regex =
            RegexFilter::allowlist([r"edx\.", r"^navigation\.", "é", "(?:never){2}$"]).unwrap();
        assert!(matches!(regex.matcher, Matcher::Regex(_)));
        for name in names {
            assert_eq!(literal.matches(name), regex.matches(name), "{name:?}");
        }
        assert!(RegexFilter::allowlist([""]).unwrap().matches("anything"));
        assert!(RegexFilter::allowlist(["^"]).unwrap().matches("anything"));
    }

    #[test]
    fn an_unbalanced_pattern_cannot_escape_its_group() {
        // `^(?:(?:a)|(?:b))` would be valid if `a)|(?:b` were spliced in unchecked.
        assert!(RegexFilter::allowlist([r"a)|(?:b"]).is_err());
    }
}
