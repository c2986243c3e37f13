//! The option table: complete, sorted, consistent with doc/config.md; every supported option
//! has a parser; and no input makes the parser panic.

use rocserv_proto::config::options::{self, Status};
use rocserv_proto::config::parse;

const DOC: &str = include_str!("../../doc/config.md");

#[test]
fn table_is_sorted_and_unique() {
    let names: Vec<&str> = options::all().iter().map(|o| o.name).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(names, sorted);
    assert!(names.len() > 130, "ocserv 1.5 has about 135 options");
}

#[test]
fn aliases_point_at_known_options() {
    for option in options::all() {
        if let Status::Alias { of, .. } = option.status {
            assert!(options::lookup(of).is_some(), "{}", option.name);
        }
    }
}

#[test]
fn every_supported_option_has_a_parser() {
    for option in options::all() {
        if option.status != Status::Supported {
            continue;
        }
        let parsed = parse(&format!("{} = \u{1}\n", option.name), "t.conf");
        for d in &parsed.diagnostics {
            assert!(!d.message.contains("BUG"), "{d}");
        }
    }
}

#[test]
fn doc_lists_every_option_with_its_status() {
    for option in options::all() {
        let row = format!("| `{}` | {} |", option.name, option.status.label());
        assert!(
            DOC.contains(&row),
            "doc/config.md lacks the row starting {row}"
        );
    }
}

/// Deterministic mutations of real files (the fuzz target covers the rest).
#[test]
fn no_panic_on_mangled_input() {
    let seeds = [
        include_str!("vectors/config/debian-ocserv.conf"),
        include_str!("vectors/config/every-option.conf"),
        "[vhost:\u{1F600}]\nroute = \u{0}/\u{300}\n\"\"\"\n=\n:\n[\n]\n#\n",
    ];
    let pieces = [
        "=",
        ":",
        "\"",
        "#",
        " #",
        "[",
        "]",
        "\n",
        "\r\n",
        "\t",
        "/",
        "[vhost:x]",
        "\u{feff}",
        "\u{1F600}",
        "0.0.0.0/0",
        "::/200",
        "255.255.255.255",
        "-1",
        "99999999999999999999",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for seed in seeds {
        for _ in 0..300 {
            let mut text: Vec<char> = seed.chars().collect();
            for _ in 0..(next() % 8 + 1) {
                let at = (next() as usize) % (text.len() + 1);
                match next() % 3 {
                    0 => {
                        let piece = pieces[(next() as usize) % pieces.len()];
                        for (i, c) in piece.chars().enumerate() {
                            text.insert(at + i, c);
                        }
                    }
                    1 if at < text.len() => {
                        text.remove(at);
                    }
                    _ => text.truncate(at),
                }
            }
            let text: String = text.into_iter().collect();
            let parsed = parse(&text, "fuzz");
            for d in &parsed.diagnostics {
                let _ = d.to_string();
            }
        }
    }
}
