//! `RegexFilter`: allow or block events by name, matching from its start.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use regex::Regex;
use regex_syntax::ast::ErrorKind as AstErrorKind;
use regex_syntax::hir::{Hir, HirKind, Look};
use tidings_event::Event;

use crate::{Interest, Processor, ProcessorError, Verdict};

/// How many times the backtracking engine may backtrack while matching one
/// name against one pattern before it gives up (`fancy-regex`'s default,
/// stated here so that the documented limit cannot drift).
const BACKTRACK_LIMIT: usize = 1_000_000;

/// Whether a [`RegexFilter`]'s patterns list the names to keep or to drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterMode {
    /// Keep only events whose name matches a pattern.
    Allowlist,
    /// Drop events whose name matches a pattern.
    Blocklist,
}

impl FilterMode {
    /// `allowlist` or `blocklist`, as in a config.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowlist => "allowlist",
            Self::Blocklist => "blocklist",
        }
    }
}

/// A pattern that neither the `regex` engine nor the backtracking engine
/// accepts.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid regex {pattern:?} (pattern {index}): {source}")]
pub struct PatternError {
    /// Position of the pattern in the list.
    pub index: usize,
    /// The pattern.
    pub pattern: String,
    /// What the engine that judged it reported.
    #[source]
    pub source: EngineError,
}

/// Why a [`PatternError`]'s pattern was refused, as the engine that judged
/// it reported: the backtracking engine for a pattern with look-around or a
/// backreference (which only it takes), else the `regex` engine.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The `regex` engine's report: a syntax error in a pattern without
    /// look-around or backreferences, or a pattern too big to compile.
    #[error(transparent)]
    Regex(regex::Error),
    /// The backtracking engine's report, for a pattern with look-around or
    /// backreferences that it refused as well.
    #[error("{0} (in the backtracking engine, which takes look-around and backreferences)")]
    Backtracking(fancy_regex::Error),
}

/// Keeps or drops events by matching their names against regular
/// expressions, anchored at the start of the name like Python's `re.match`
/// (edX semantics): `edx\.` matches `edx.course` but not `xedx.course`, and
/// `edx` matches `edxyz` too (add `$` to anchor the end).
///
/// An allowlist with no patterns drops everything; a blocklist with none
/// keeps everything.
///
/// Patterns are in the syntax of the `regex` crate, which is Python's `re`
/// for everything but look-around and backreferences. A pattern that
/// `regex` refuses but that uses those, such as `(?!debug\.)`,
/// `(?<=\.done)$` or `(\w+)\.\1`, goes to a backtracking engine
/// (`fancy-regex`), slower and asked only after the other patterns failed to
/// match. When that engine gives up on a name (more than a million
/// backtracking steps), the pattern counts as not matching it: an allowlist
/// drops the event and a blocklist keeps it. The first such failure is
/// logged as a warning and all are counted ([`RegexFilter::match_failures`]).
///
/// ```
/// use tidings_processors::RegexFilter;
///
/// let allow = RegexFilter::allowlist([r"(?!debug\.)"])?;
/// assert!(allow.matches("edx.course") && !allow.matches("debug.tick"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct RegexFilter {
    mode: FilterMode,
    patterns: Vec<String>,
    /// The patterns the `regex` engine takes.
    matcher: Matcher,
    /// The others, in order.
    backtracking: Vec<BacktrackingPattern>,
    /// Shared by clones, so that the count and the one warning are the
    /// filter's, however many routers hold a copy.
    failures: Arc<MatchFailures>,
}

/// How names are matched: most filters list plain prefixes such as
/// `edx\.`, which a `starts_with` test answers faster than a regex engine.
#[derive(Debug, Clone)]
enum Matcher {
    Prefixes(Vec<String>),
    Regex(Regex),
}

/// A pattern only the backtracking engine takes, compiled anchored at the
/// start of the name.
#[derive(Debug, Clone)]
struct BacktrackingPattern {
    index: usize,
    regex: fancy_regex::Regex,
}

/// The times the backtracking engine gave up, and whether that was logged.
#[derive(Debug, Default)]
struct MatchFailures {
    count: AtomicU64,
    logged: AtomicBool,
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

/// Whether the `regex` parser's first objection to `pattern` is a feature
/// only the backtracking engine has (look-around, backreferences).
fn needs_backtracking(pattern: &str) -> bool {
    regex_syntax::ast::parse::Parser::new()
        .parse(pattern)
        .is_err_and(|e| {
            matches!(
                e.kind(),
                AstErrorKind::UnsupportedLookAround | AstErrorKind::UnsupportedBackreference
            )
        })
}

impl BacktrackingPattern {
    /// Compiles the pattern at `index`, which the `regex` engine refused
    /// with `refused`, for the backtracking engine; a [`PatternError`] if
    /// that engine refuses it too, or if `regex` refused it for its size.
    fn compile(
        index: usize,
        pattern: &str,
        refused: regex::Error,
        backtrack_limit: usize,
    ) -> Result<Self, PatternError> {
        let error = |source| PatternError {
            index,
            pattern: pattern.to_owned(),
            source,
        };
        if !matches!(refused, regex::Error::Syntax(_)) {
            return Err(error(EngineError::Regex(refused)));
        }
        // Alone first, as for `regex`: an unbalanced pattern must not
        // escape the group it is wrapped in below.
        if let Err(e) = fancy_regex::Regex::new(pattern) {
            return Err(error(if needs_backtracking(pattern) {
                EngineError::Backtracking(e)
            } else {
                EngineError::Regex(refused)
            }));
        }
        // `(?:` numbers no group, so `\1` still means the pattern's own.
        let regex = fancy_regex::RegexBuilder::new(&format!("^(?:{pattern})"))
            .backtrack_limit(backtrack_limit)
            .build()
            .map_err(|e| error(EngineError::Backtracking(e)))?;
        Ok(Self { index, regex })
    }
}

impl RegexFilter {
    /// A filter keeping only names that match one of `patterns`.
    ///
    /// # Errors
    ///
    /// [`PatternError`] for the first pattern that neither engine accepts.
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
    /// [`PatternError`] for the first pattern that neither engine accepts.
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
    /// [`PatternError`] for the first pattern that neither engine accepts.
    pub fn new<I>(mode: FilterMode, patterns: I) -> Result<Self, PatternError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::with_backtrack_limit(mode, patterns, BACKTRACK_LIMIT)
    }

    fn with_backtrack_limit<I>(
        mode: FilterMode,
        patterns: I,
        backtrack_limit: usize,
    ) -> Result<Self, PatternError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let patterns: Vec<String> = patterns.into_iter().map(Into::into).collect();
        // Each pattern must compile alone: wrapping an unbalanced one such as
        // `a)|(b` in a group could otherwise turn it into a valid regex.
        let mut plain: Vec<&str> = Vec::new();
        let mut backtracking = Vec::new();
        for (index, pattern) in patterns.iter().enumerate() {
            match Regex::new(pattern) {
                Ok(_) => plain.push(pattern),
                Err(refused) => backtracking.push(BacktrackingPattern::compile(
                    index,
                    pattern,
                    refused,
                    backtrack_limit,
                )?),
            }
        }
        let prefixes: Option<Vec<String>> = plain.iter().map(|p| literal_prefix(p)).collect();
        let matcher = match prefixes {
            Some(prefixes) => Matcher::Prefixes(prefixes),
            None => {
                let alternation: Vec<String> = plain.iter().map(|p| format!("(?:{p})")).collect();
                let combined = format!("^(?:{})", alternation.join("|"));
                Matcher::Regex(Regex::new(&combined).map_err(|source| PatternError {
                    index: 0,
                    pattern: combined,
                    source: EngineError::Regex(source),
                })?)
            }
        };
        Ok(Self {
            mode,
            patterns,
            matcher,
            backtracking,
            failures: Arc::default(),
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

    /// The patterns that go to the backtracking engine (those with
    /// look-around or backreferences), in order; the others are matched by
    /// the `regex` engine or, when they are plain literals, by a prefix test.
    pub fn backtracking_patterns(&self) -> impl Iterator<Item = &str> {
        self.backtracking
            .iter()
            .map(|p| self.patterns[p.index].as_str())
    }

    /// How many times the backtracking engine gave up matching a name
    /// against a pattern (taking it as no match), counted over this filter
    /// and its clones.
    #[must_use]
    pub fn match_failures(&self) -> u64 {
        self.failures.count.load(Ordering::Relaxed)
    }

    /// Whether `name` matches one of the patterns (from its start). A
    /// pattern the backtracking engine gives up on counts as not matching.
    #[must_use]
    pub fn matches(&self, name: &str) -> bool {
        let fast = match &self.matcher {
            Matcher::Prefixes(prefixes) => prefixes.iter().any(|p| name.starts_with(p.as_str())),
            Matcher::Regex(regex) => regex.is_match(name),
        };
        fast || self
            .backtracking
            .iter()
            .any(|p| self.backtracking_match(p, name))
    }

    /// Whether `name` matches the backtracking `pattern`: not if the engine
    /// gives up, which is counted, and logged the first time.
    fn backtracking_match(&self, pattern: &BacktrackingPattern, name: &str) -> bool {
        let error = match pattern.regex.is_match(name) {
            Ok(matched) => return matched,
            Err(error) => error,
        };
        self.failures.count.fetch_add(1, Ordering::Relaxed);
        if !self.failures.logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                pattern = self.patterns[pattern.index].as_str(),
                index = pattern.index,
                name,
                %error,
                "a regex filter pattern gave up matching an event name and counts as not \
                 matching it; further failures of this filter are counted, not logged"
            );
        }
        false
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

    /// `regex_filter allowlist ["edx\\."]`.
    fn describe(&self) -> String {
        format!("regex_filter {} {:?}", self.mode.as_str(), self.patterns)
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
        // The same for the backtracking engine's wrapping.
        assert!(RegexFilter::allowlist([r"(?!a)a)|(?:b"]).is_err());
    }

    #[test]
    fn plain_patterns_never_reach_the_backtracking_engine() {
        for patterns in [
            vec![r"edx\.", r"^navigation\."],
            vec![
                r"nav.*\.request$",
                r"(?i)EDX\.",
                r"(?P<app>\w+)\.x",
                r"\bedx",
            ],
        ] {
            let f = RegexFilter::allowlist(patterns.clone()).unwrap();
            assert!(f.backtracking.is_empty(), "{patterns:?}");
        }
        // Beside look-around, the plain ones keep their fast paths.
        let literal = RegexFilter::allowlist([r"edx\.", r"(?!debug\.)nav", "^app"]).unwrap();
        assert!(
            matches!(&literal.matcher, Matcher::Prefixes(p) if p == &["edx.", "app"]),
            "{literal:?}"
        );
        assert_eq!(
            literal
                .backtracking
                .iter()
                .map(|p| p.index)
                .collect::<Vec<_>>(),
            [1]
        );
        let regex = RegexFilter::allowlist([r"nav.*\.request$", r"(\w)\1"]).unwrap();
        assert!(matches!(regex.matcher, Matcher::Regex(_)), "{regex:?}");
        assert_eq!(regex.backtracking.len(), 1);
        // Only look-around: nothing for the fast path, which then matches nothing.
        let only = RegexFilter::allowlist([r"(?=a)"]).unwrap();
        assert!(matches!(&only.matcher, Matcher::Prefixes(p) if p.is_empty()));
        assert!(only.matches("a.b") && !only.matches("b.a"));
    }

    #[test]
    fn backtracking_patterns_are_anchored_at_the_start_only() {
        // An unanchored search would find `edx.` after the `x`.
        let f = RegexFilter::allowlist([r"(?!x)edx\."]).unwrap();
        assert!(f.matches("edx.course"));
        assert!(!f.matches("xedx.course"));
        // A look-behind cannot see before the start, as with `re.match`.
        let behind = RegexFilter::allowlist([r"(?<=x)edx"]).unwrap();
        assert!(!behind.matches("xedx") && !behind.matches("edx"));
        // Not anchored at the end.
        let open = RegexFilter::allowlist([r"(?=e)edx"]).unwrap();
        assert!(open.matches("edxyz"));
        let closed = RegexFilter::allowlist([r"(?=e)edx$"]).unwrap();
        assert!(!closed.matches("edxyz") && closed.matches("edx"));
    }

    #[test]
    fn backreferences_count_within_their_own_pattern() {
        // Compiled together, `\1` would name the first pattern's group.
        let f = RegexFilter::allowlist([r"(x)(?=y)", r"(\w+)\.\1\."]).unwrap();
        assert_eq!(f.backtracking.len(), 2);
        assert!(f.matches("edx.edx.a"));
        assert!(!f.matches("edx.course.a"));
        assert!(f.matches("xy"));
    }

    #[test]
    fn errors_come_from_the_engine_that_judged_the_pattern() {
        // No look-around: `regex`'s report, as before.
        let err = RegexFilter::allowlist([r"bad("]).unwrap_err();
        assert!(matches!(err.source, EngineError::Regex(_)), "{err:?}");
        // Look-around with another fault: the backtracking engine's.
        let err = RegexFilter::allowlist([r"ok\.", r"(?!debug\.)("]).unwrap_err();
        assert_eq!((err.index, err.pattern.as_str()), (1, r"(?!debug\.)("));
        assert!(
            matches!(err.source, EngineError::Backtracking(_)),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.starts_with(r#"invalid regex "(?!debug\\.)(" (pattern 1): "#)
                && message.contains("parenthesis")
                && message.ends_with(
                    "(in the backtracking engine, which takes look-around and backreferences)"
                ),
            "{message}"
        );
        // A backreference to a group that does not exist.
        let err = RegexFilter::blocklist([r"(\w)\2"]).unwrap_err();
        assert!(
            matches!(err.source, EngineError::Backtracking(_)),
            "{err:?}"
        );
        assert!(err.to_string().contains("back reference"), "{err}");
        // Too big for `regex` is not handed to the other engine.
        let err = RegexFilter::allowlist([r"\w{1000}{1000}"]).unwrap_err();
        assert!(
            matches!(
                err.source,
                EngineError::Regex(regex::Error::CompiledTooBig(_))
            ),
            "{err:?}"
        );
    }

    /// Catastrophic backtracking on any name of a dozen `a`s or more.
    const EXPLOSIVE: &str = r"((?!x)\w+)+!";

    #[test]
    fn a_pattern_the_engine_gives_up_on_does_not_match_and_is_counted() {
        let name = "aaaaaaaaaaaaaaaaaaaa";
        let allow =
            RegexFilter::with_backtrack_limit(FilterMode::Allowlist, [EXPLOSIVE], 1000).unwrap();
        assert!(!allow.matches(name));
        assert_eq!(allow.match_failures(), 1);
        assert_eq!(verdict(&allow, name), Verdict::Drop);
        assert_eq!(allow.interest(name), Interest::Never);
        assert_eq!(allow.match_failures(), 3);
        // Clones share the count.
        let clone = allow.clone();
        assert!(!clone.matches(name));
        assert_eq!(allow.match_failures(), 4);
        // A name it can decide is not a failure.
        assert!(allow.matches("a!") && allow.matches("ab!"));
        assert_eq!(allow.match_failures(), 4);

        let block =
            RegexFilter::with_backtrack_limit(FilterMode::Blocklist, [EXPLOSIVE], 1000).unwrap();
        assert_eq!(verdict(&block, name), Verdict::Keep);
        assert_eq!(block.match_failures(), 1);

        // The other patterns still decide.
        let union = RegexFilter::with_backtrack_limit(
            FilterMode::Allowlist,
            [EXPLOSIVE, r"(?!debug)a"],
            1000,
        )
        .unwrap();
        assert!(union.matches(name));
        assert_eq!(union.match_failures(), 1);
    }

    #[test]
    fn the_default_limit_gives_up_too() {
        // Some 2^24 steps without a limit; a million with the default one.
        let f = RegexFilter::allowlist([EXPLOSIVE]).unwrap();
        assert!(!f.matches("aaaaaaaaaaaaaaaaaaaaaaaa"));
        assert_eq!(f.match_failures(), 1);
    }

    /// Counts the events logged at WARN.
    struct Warnings(std::sync::Arc<AtomicU64>);

    impl tracing::Subscriber for Warnings {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            if *event.metadata().level() == tracing::Level::WARN {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[test]
    fn only_the_first_failure_is_logged() {
        let warnings = std::sync::Arc::new(AtomicU64::new(0));
        let subscriber = Warnings(warnings.clone());
        tracing::subscriber::with_default(subscriber, || {
            let f = RegexFilter::with_backtrack_limit(FilterMode::Allowlist, [EXPLOSIVE], 1000)
                .unwrap();
            for name in [
                "aaaaaaaaaaaaaaaaaaaa",
                "bbbbbbbbbbbbbbbbbbbb",
                "aaaaaaaaaaaaaaaaaaaa",
            ] {
                assert!(!f.matches(name));
            }
            assert_eq!(f.match_failures(), 3);
        });
        assert_eq!(warnings.load(Ordering::Relaxed), 1);
    }
}
