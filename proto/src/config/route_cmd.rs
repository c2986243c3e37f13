//! `route-add-cmd` / `route-del-cmd`: the command main runs for each `iroute` of a client when
//! its tunnel starts and ends.
//!
//! ocserv hands the expanded string to a shell. rocserv splits a plain template into words once,
//! at configuration time (quotes group words, as in a shell), and expands the placeholders
//! inside each word, so such a command is an argument vector and no shell parses it. A template
//! that uses shell syntax (`;`, `|`, `&&`, redirections, `$`, globs, ...) runs, as in ocserv,
//! with `/bin/sh -c` (an ocserv.conf that ocserv accepts must run here). Either way the values
//! substituted are typed (a network printed by us, our own device name of `[A-Za-z0-9_.-]`),
//! never strings a client sent, so nothing a client controls reaches the shell.
//!
//! Placeholders (ocserv's): `%{R}` the network as `address/netmask` for IPv4 and
//! `address/prefix` for IPv6, `%{RI}` the network as `address/prefix`, `%{D}` the tun device;
//! `%R` and `%D` are ocserv's older spellings. Anything else after `%` stays as written.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::IpNet;

/// A parsed command template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteCmd {
    words: Vec<Vec<Piece>>,
    /// The template uses shell syntax: `words` holds one word, the whole template, run with
    /// `/bin/sh -c`.
    shell: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Piece {
    Text(String),
    /// `%{R}` / `%R`.
    Route,
    /// `%{RI}`.
    RouteCidr,
    /// `%{D}` / `%D`.
    Device,
}

/// Why a template is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteCmdError {
    #[error("empty command")]
    Empty,
}

/// Characters that mean something to a shell outside quotes (such a template runs with
/// `/bin/sh -c`).
const SHELL_OUTSIDE: &[char] = &[
    ';', '&', '|', '<', '>', '`', '$', '(', ')', '\\', '*', '?', '[', ']', '#', '~', '\n', '\r',
];
/// Characters a shell would still expand inside double quotes.
const SHELL_IN_DOUBLE: &[char] = &['`', '$', '\\', '\n', '\r'];

impl RouteCmd {
    /// Split `template` into words (spaces and tabs separate words; `'...'` and `"..."` group)
    /// and find the placeholders in each.
    pub fn parse(template: &str) -> Result<Self, RouteCmdError> {
        if template.trim().is_empty() {
            return Err(RouteCmdError::Empty);
        }
        Ok(Self::words(template).unwrap_or_else(|| Self {
            words: vec![pieces(template)],
            shell: true,
        }))
    }

    /// The template as an argument vector, or `None` when it needs a shell (shell syntax, or an
    /// unterminated quote, which the shell reports when it runs).
    fn words(template: &str) -> Option<Self> {
        let mut words = Vec::new();
        let mut word: Option<String> = None;
        let mut quote: Option<char> = None;
        for c in template.chars() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(q) => {
                    if q == '"' && SHELL_IN_DOUBLE.contains(&c) {
                        return None;
                    }
                    word.get_or_insert_with(String::new).push(c);
                }
                None if c == '\'' || c == '"' => {
                    quote = Some(c);
                    word.get_or_insert_with(String::new);
                }
                None if c == ' ' || c == '\t' => {
                    if let Some(w) = word.take() {
                        words.push(pieces(&w));
                    }
                }
                None if SHELL_OUTSIDE.contains(&c) => return None,
                None => word.get_or_insert_with(String::new).push(c),
            }
        }
        if quote.is_some() {
            return None;
        }
        if let Some(w) = word {
            words.push(pieces(&w));
        }
        Some(Self {
            words,
            shell: false,
        })
    }

    /// The template needs `/bin/sh -c` (shell syntax).
    pub fn uses_shell(&self) -> bool {
        self.shell
    }

    /// rocserv's default `route-add-cmd`: `ip route add %{RI} dev %{D}`.
    pub fn default_add() -> Self {
        Self::ip_route("add")
    }

    /// rocserv's default `route-del-cmd`: `ip route delete %{RI} dev %{D}`.
    pub fn default_del() -> Self {
        Self::ip_route("delete")
    }

    fn ip_route(verb: &str) -> Self {
        let text = |s: &str| vec![Piece::Text(s.to_owned())];
        Self {
            words: vec![
                text("ip"),
                text("route"),
                text(verb),
                vec![Piece::RouteCidr],
                text("dev"),
                vec![Piece::Device],
            ],
            shell: false,
        }
    }

    /// The argument vector for network `net` on device `device` (the program is the first).
    pub fn argv(&self, net: &IpNet, device: &str) -> Vec<String> {
        let words = self.expand(net, device);
        if self.shell {
            let mut argv = vec!["/bin/sh".to_owned(), "-c".to_owned()];
            argv.extend(words);
            return argv;
        }
        words
    }

    fn expand(&self, net: &IpNet, device: &str) -> Vec<String> {
        self.words
            .iter()
            .map(|word| {
                word.iter().fold(String::new(), |mut out, piece| {
                    match piece {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Route => push_route(&mut out, net),
                        Piece::RouteCidr => {
                            let _ = write!(out, "{}/{}", net.addr, net.prefix);
                        }
                        Piece::Device => out.push_str(device),
                    }
                    out
                })
            })
            .collect()
    }
}

/// `%{R}`: IPv4 as `address/netmask`, IPv6 as `address/prefix` (ocserv's normal form).
fn push_route(out: &mut String, net: &IpNet) {
    let _ = match net.ipv4_netmask() {
        Some(mask) => write!(out, "{}/{mask}", net.addr),
        None => write!(out, "{}/{}", net.addr, net.prefix),
    };
}

/// The placeholders of one word. The longest spelling is tried first (`%{RI}` before `%{R}`).
fn pieces(word: &str) -> Vec<Piece> {
    const NAMES: [(&str, Piece); 5] = [
        ("%{RI}", Piece::RouteCidr),
        ("%{R}", Piece::Route),
        ("%{D}", Piece::Device),
        ("%R", Piece::Route),
        ("%D", Piece::Device),
    ];
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = word;
    while !rest.is_empty() {
        if let Some((name, piece)) = NAMES.iter().find(|(name, _)| rest.starts_with(name)) {
            if !text.is_empty() {
                out.push(Piece::Text(std::mem::take(&mut text)));
            }
            out.push(piece.clone());
            rest = rest.get(name.len()..).unwrap_or_default();
            continue;
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            text.push(c);
        }
        rest = chars.as_str();
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str, prefix: u8) -> IpNet {
        IpNet {
            addr: s.parse().unwrap(),
            prefix,
        }
    }

    #[test]
    fn expands_into_words() {
        let cmd = RouteCmd::parse("/usr/sbin/ip route add %{R} dev %{D}").unwrap();
        assert_eq!(
            cmd.argv(&net("192.168.2.0", 24), "vpns3"),
            [
                "/usr/sbin/ip",
                "route",
                "add",
                "192.168.2.0/255.255.255.0",
                "dev",
                "vpns3"
            ]
        );
        let cmd = RouteCmd::parse("/sbin/route add -net %{RI} dev %D").unwrap();
        assert_eq!(
            cmd.argv(&net("10.1.0.0", 16), "vpns0"),
            ["/sbin/route", "add", "-net", "10.1.0.0/16", "dev", "vpns0"]
        );
        // Old spellings, placeholders inside a word, IPv6, an unknown `%` kept as written.
        let cmd = RouteCmd::parse("x --net=%R,%{RI} %{X} 100% \"a b\"'c'").unwrap();
        assert_eq!(
            cmd.argv(&net("fd00:1::", 64), "t"),
            ["x", "--net=fd00:1::/64,fd00:1::/64", "%{X}", "100%", "a bc"]
        );
        assert_eq!(
            RouteCmd::default_add().argv(&net("10.9.0.0", 24), "vpns1"),
            ["ip", "route", "add", "10.9.0.0/24", "dev", "vpns1"]
        );
        assert_eq!(
            RouteCmd::default_del().argv(&net("10.9.0.0", 24), "vpns1"),
            ["ip", "route", "delete", "10.9.0.0/24", "dev", "vpns1"]
        );
        // Quotes keep an empty word.
        assert_eq!(
            RouteCmd::parse("a '' b")
                .unwrap()
                .argv(&net("10.0.0.0", 8), "d"),
            ["a", "", "b"]
        );
    }

    #[test]
    fn shell_syntax_runs_with_sh_and_only_typed_values_are_expanded() {
        for (s, _c) in [
            ("ip route add %{R} dev %{D}; iptables -F", ';'),
            ("ip route add %{R} dev %{D} && true", '&'),
            ("a | b", '|'),
            ("a > /tmp/x", '>'),
            ("a $(id)", '$'),
            ("a \"$HOME\"", '$'),
            ("a `id`", '`'),
            ("a *", '*'),
            ("a \\;", '\\'),
            ("a # comment", '#'),
        ] {
            let cmd = RouteCmd::parse(s).unwrap();
            assert!(cmd.uses_shell(), "{s}");
            let argv = cmd.argv(&net("10.1.0.0", 16), "vpns0");
            assert_eq!(argv.len(), 3, "{s}");
            assert_eq!(argv[..2], ["/bin/sh", "-c"]);
        }
        let argv = RouteCmd::parse("ip route add %{R} dev %{D}; echo %{RI}")
            .unwrap()
            .argv(&net("10.1.0.0", 16), "vpns3");
        assert_eq!(
            argv[2],
            "ip route add 10.1.0.0/255.255.0.0 dev vpns3; echo 10.1.0.0/16"
        );
        // Inside single quotes nothing is special: no shell needed.
        assert!(!RouteCmd::parse("a ';$`*'").unwrap().uses_shell());
        assert!(RouteCmd::parse("a 'b").unwrap().uses_shell());
        assert_eq!(RouteCmd::parse("  \t"), Err(RouteCmdError::Empty));
        assert_eq!(RouteCmd::parse(""), Err(RouteCmdError::Empty));
    }
}
