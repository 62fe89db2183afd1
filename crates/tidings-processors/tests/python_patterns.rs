//! Filter patterns written for Python's `re` that the `regex` crate refuses
//! (look-around, backreferences) load and match as `re.match` would.

use serde_json::json;
use tidings_event::{Event, EventName};
use tidings_processors::{EngineError, FilterMode, Interest, Processor, RegexFilter, Verdict};

fn verdict(filter: &RegexFilter, name: &'static str) -> Verdict {
    let mut event = Event::new(EventName::new(name).unwrap(), json!({}));
    let verdict = filter.process(&mut event).unwrap();
    let interest = filter.interest(name);
    assert_eq!(
        interest,
        Interest::keep_if(verdict == Verdict::Keep),
        "{name}"
    );
    verdict
}

#[test]
fn a_negative_look_ahead_allowlist_keeps_all_but_its_prefix() {
    let f = RegexFilter::allowlist([r"(?!debug\.)"]).unwrap();
    assert_eq!(verdict(&f, "edx.x"), Verdict::Keep);
    assert_eq!(verdict(&f, "debug.x"), Verdict::Drop);
    assert_eq!(verdict(&f, "debugger.x"), Verdict::Keep);
    // Anchored at the start, as `re.match`: `.debug.` later on is no match.
    assert_eq!(verdict(&f, "edx.debug.x"), Verdict::Keep);
    assert_eq!(
        f.backtracking_patterns().collect::<Vec<_>>(),
        [r"(?!debug\.)"]
    );

    let block = RegexFilter::blocklist([r"edx\.(?=internal\.)"]).unwrap();
    assert_eq!(verdict(&block, "edx.internal.tick"), Verdict::Drop);
    assert_eq!(verdict(&block, "edx.course"), Verdict::Keep);
    assert_eq!(verdict(&block, "my.edx.internal.x"), Verdict::Keep);
}

#[test]
fn a_look_behind_matches_as_in_python() {
    let f = RegexFilter::allowlist([r"[\w.]+(?<=\.completed)$"]).unwrap();
    assert_eq!(verdict(&f, "edx.course.completed"), Verdict::Keep);
    assert_eq!(verdict(&f, "edx.course.completed.x"), Verdict::Drop);
    assert_eq!(verdict(&f, "edx.uncompleted"), Verdict::Drop);

    let not_after = RegexFilter::blocklist([r"\w+\.(?<!test\.)tick"]).unwrap();
    assert_eq!(verdict(&not_after, "app.tick"), Verdict::Drop);
    assert_eq!(verdict(&not_after, "test.tick"), Verdict::Keep);
}

#[test]
fn backreferences_match_repeated_text() {
    let f = RegexFilter::allowlist([r"(\w+)\.\1\."]).unwrap();
    assert_eq!(verdict(&f, "edx.edx.course"), Verdict::Keep);
    assert_eq!(verdict(&f, "edx.course.edx"), Verdict::Drop);

    // Python's named form.
    let named = RegexFilter::allowlist([r"(?P<app>\w+)\.(?P=app)$"]).unwrap();
    assert_eq!(verdict(&named, "nav.nav"), Verdict::Keep);
    assert_eq!(verdict(&named, "nav.navigation"), Verdict::Drop);
}

#[test]
fn a_mixed_list_is_the_union_of_its_patterns() {
    let patterns = [
        r"edx\.",
        r"nav.*\.request$",
        r"(?!debug\.)\w+\.test$",
        r"(\w)\1",
    ];
    let names = [
        "edx.course",
        "navigation.request",
        "navigation.response",
        "unit.test",
        "debug.test",
        "debug.tick",
        "aardvark.x",
        "xedx.course",
        "zz",
        "other",
    ];
    for mode in [FilterMode::Allowlist, FilterMode::Blocklist] {
        let all = RegexFilter::new(mode, patterns).unwrap();
        let alone: Vec<RegexFilter> = patterns
            .iter()
            .map(|p| RegexFilter::new(mode, [*p]).unwrap())
            .collect();
        for name in names {
            let any = alone.iter().any(|f| f.matches(name));
            assert_eq!(all.matches(name), any, "{name}");
            let expected = Verdict::keep_if(any == (mode == FilterMode::Allowlist));
            assert_eq!(verdict(&all, name), expected, "{name} {mode:?}");
        }
    }
    let all = RegexFilter::allowlist(patterns).unwrap();
    assert!(all.matches("edx.course") && all.matches("unit.test") && all.matches("zz"));
    assert!(!all.matches("debug.test") && !all.matches("other"));
    assert_eq!(
        all.backtracking_patterns().collect::<Vec<_>>(),
        [r"(?!debug\.)\w+\.test$", r"(\w)\1"]
    );
}

#[test]
fn plain_patterns_stay_on_the_fast_engines() {
    let f = RegexFilter::allowlist([r"edx\.", r"^nav.*\.request$", r"(?i)APP\.", r"(?P<x>a)b"])
        .unwrap();
    assert_eq!(f.backtracking_patterns().count(), 0);
}

#[test]
fn a_pattern_neither_engine_accepts_is_an_error_naming_it() {
    let err = RegexFilter::allowlist([r"edx\.", r"(?<!debug\.)(\w+"]).unwrap_err();
    assert_eq!(err.index, 1);
    assert_eq!(err.pattern, r"(?<!debug\.)(\w+");
    assert!(
        matches!(err.source, EngineError::Backtracking(_)),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with(r#"invalid regex "(?<!debug\\.)(\\w+" (pattern 1): "#),
        "{message}"
    );
    assert!(message.contains("parenthesis"), "{message}");

    // Without look-around, the `regex` engine's reason, as before.
    let err = RegexFilter::blocklist([r"edx\.[a-"]).unwrap_err();
    assert!(matches!(err.source, EngineError::Regex(_)), "{err:?}");
    assert!(
        err.to_string().contains("unclosed character class"),
        "{err}"
    );
}
