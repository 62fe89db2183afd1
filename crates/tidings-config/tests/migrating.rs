//! Every `toml` block of docs/migrating.md is a whole config that loads.
//!
//! The blocks are read from the file, in order; a block fenced
//! ```` ```toml catalog ```` is the `catalog.toml` the configs name, written
//! to a scratch directory where the configs are then loaded (their relative
//! paths, such as `static_dir = "public"`, resolve there). Nothing is
//! skipped: a block that does not load fails the test with its line.

use std::path::Path;

use tidings_config::{Registry, load};

/// A fenced block: the line its text starts on (1-based), its info string
/// after the language, and its text.
struct Block {
    line: usize,
    attributes: String,
    text: String,
}

/// Splits the markdown into fenced blocks of any language and returns the
/// TOML ones; fences of other languages are tracked so their contents are
/// never read as TOML.
fn fenced_toml_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut inside: Option<(bool, Block)> = None;
    for (index, line) in markdown.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut inside, fence) {
            (Some(_), Some(_)) => {
                let (is_toml, block) = inside.take().expect("inside a block");
                if is_toml {
                    blocks.push(block);
                }
            }
            (Some((_, block)), None) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, Some(info)) => {
                let mut words = info.split_whitespace();
                let is_toml = words.next() == Some("toml");
                inside = Some((
                    is_toml,
                    Block {
                        line: index + 2,
                        attributes: words.collect::<Vec<_>>().join(" "),
                        text: String::new(),
                    },
                ));
            }
            (None, None) => {}
        }
    }
    assert!(
        inside.is_none(),
        "docs/migrating.md: a fenced block is not closed"
    );
    blocks
}

fn migrating_md() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/migrating.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn every_toml_block_of_the_migration_guide_loads() {
    let markdown = migrating_md();
    let blocks = fenced_toml_blocks(&markdown);
    let (catalogs, configs): (Vec<&Block>, Vec<&Block>) =
        blocks.iter().partition(|b| b.attributes == "catalog");
    let unknown: Vec<String> = configs
        .iter()
        .filter(|b| !b.attributes.is_empty())
        .map(|b| format!("line {}: ```toml {}", b.line, b.attributes))
        .collect();
    assert!(
        unknown.is_empty(),
        "docs/migrating.md: toml blocks marked with something other than `catalog`: {unknown:?}"
    );
    assert_eq!(
        catalogs.len(),
        1,
        "docs/migrating.md: expected one ```toml catalog block (the catalog.toml the configs name)"
    );
    assert!(
        configs.len() >= 8,
        "docs/migrating.md: only {} toml config blocks found; the guide has at least 8",
        configs.len()
    );

    // A scratch directory holding what the configs name, as the working
    // directory relative paths resolve against.
    let dir = std::env::temp_dir().join(format!("tidings-migrating-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("public")).unwrap();
    std::fs::write(dir.join("catalog.toml"), &catalogs[0].text).unwrap();
    std::env::set_current_dir(&dir).unwrap();

    let registry = Registry::default();
    let failures: Vec<String> = configs
        .iter()
        .filter_map(|block| {
            load(&block.text, &registry).err().map(|errors| {
                format!(
                    "docs/migrating.md, the ```toml block at line {}:\n{errors}",
                    block.line
                )
            })
        })
        .collect();
    std::env::set_current_dir(std::env::temp_dir()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "{} of {} toml blocks do not load:\n\n{}",
        failures.len(),
        configs.len(),
        failures.join("\n\n")
    );
}

#[test]
fn the_block_reader_finds_toml_blocks_only() {
    let markdown =
        "text\n```toml\na = 1\n```\n```python\nx = '```toml'\n```\n```toml catalog\nb = 2\n```\n";
    let blocks = fenced_toml_blocks(markdown);
    assert_eq!(blocks.len(), 2);
    assert_eq!((blocks[0].line, blocks[0].text.as_str()), (3, "a = 1\n"));
    assert_eq!(
        (
            blocks[1].line,
            blocks[1].attributes.as_str(),
            blocks[1].text.as_str()
        ),
        (9, "catalog", "b = 2\n")
    );
}
