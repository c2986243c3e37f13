//! Rendering the server's documents: the login form (`auth-request`, protocol.md §1.5) and the
//! success document (`complete`, protocol.md §1.7), shaped like the newest ocserv's.

use std::fmt::Write as _;

use super::{FormFields, FormGroup, LoginForm};

/// Both documents open like ocserv's: XML declaration, `config-auth` and its version line.
const VERSION: &str = "<version who=\"sg\">0.1(1)</version>\n";

/// Render `form` as a complete XML document. All text is escaped here and only here.
pub fn render_login_form(form: &LoginForm) -> String {
    let mut out = String::with_capacity(512);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str("<config-auth client=\"vpn\" type=\"auth-request\">\n");
    out.push_str(VERSION);
    out.push_str("<auth id=\"main\">\n");
    if let Some(banner) = form.banner.as_deref() {
        element(&mut out, "banner", banner);
    }
    element(&mut out, "message", &form.message);
    if let Some(error) = form.error.as_deref() {
        element(&mut out, "error", error);
    }
    out.push_str("\n<form method=\"post\" action=\"/auth\">\n");
    match &form.fields {
        FormFields::UsernamePassword => {
            input(&mut out, "text", "username", "Username:");
            input(&mut out, "password", "password", "Password:");
            group_select(&mut out, &form.groups);
        }
        FormFields::Secondary { label, secret } => {
            let kind = if *secret { "password" } else { "text" };
            input(&mut out, kind, "secondary_password", label);
        }
    }
    out.push_str("</form></auth>\n</config-auth>\n");
    out
}

/// Render the `type="complete"` success document, carrying `session_token` as
/// `<session-token>` too (protocol.md §1.7).
pub fn render_complete(banner: Option<&str>, session_token: &str) -> String {
    let mut out = String::with_capacity(320);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str("<config-auth client=\"vpn\" type=\"complete\">\n");
    out.push_str(VERSION);
    out.push_str("<auth id=\"success\">\n<title>SSL VPN Service</title>");
    if let Some(banner) = banner {
        element(&mut out, "banner", banner);
    }
    out.push_str("</auth>\n");
    element(&mut out, "session-token", session_token);
    out.push_str("\n</config-auth>\n");
    out
}

fn element(out: &mut String, name: &str, text: &str) {
    let _ = write!(out, "<{name}>");
    escape_into(out, text);
    let _ = write!(out, "</{name}>");
}

fn input(out: &mut String, kind: &str, name: &str, label: &str) {
    let _ = write!(out, "<input type=\"{kind}\" name=\"{name}\" label=\"");
    escape_into(out, label);
    out.push_str("\" />\n");
}

/// ocserv's group choice (src/worker-auth.c `get_auth_handler2`): openconnect takes the
/// `select` named `group_list` as its auth group and matches `--authgroup` against the labels.
fn group_select(out: &mut String, groups: &[FormGroup]) {
    if groups.is_empty() {
        return;
    }
    out.push_str("<select name=\"group_list\" label=\"Group:\">\n");
    for group in groups {
        out.push_str("<option value=\"");
        escape_into(out, &group.value);
        out.push_str("\">");
        escape_into(out, &group.label);
        out.push_str("</option>\n");
    }
    out.push_str("</select>\n");
}

/// The one escaping function: markup characters and CR become entities (safe in text and in
/// double-quoted attributes), and characters XML 1.0 cannot carry at all (C0 controls other
/// than tab, newline and carriage return) become spaces rather than breaking the document.
pub(super) fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // A raw CR would be normalised away by the client's parser.
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if c < ' ' => out.push(' '),
            '\u{fffe}' | '\u{ffff}' => out.push(' '),
            c => out.push(c),
        }
    }
}

/// What [`escape_into`] keeps of `text`, for round-trip checks (tests and fuzzing).
#[doc(hidden)]
pub fn xml_safe(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if c < ' ' || c == '\u{fffe}' || c == '\u{ffff}' => ' ',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use quick_xml::events::Event;
    use quick_xml::Reader;

    use super::*;

    /// Everything a client would read from a server document: element texts and input
    /// attributes, in order.
    #[derive(Debug, Default, PartialEq)]
    struct Seen {
        texts: Vec<(String, String)>,
        inputs: Vec<Vec<(String, String)>>,
        auth_id: Option<String>,
        kind: Option<String>,
    }

    fn read_back(doc: &str) -> Seen {
        let mut reader = Reader::from_str(doc);
        let mut seen = Seen::default();
        let mut open: Vec<String> = Vec::new();
        loop {
            match reader.read_event().unwrap() {
                Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"input" => {
                    let attrs = e
                        .attributes()
                        .map(|a| {
                            let a = a.unwrap();
                            let key = String::from_utf8(a.key.as_ref().to_vec()).unwrap();
                            (key, a.unescape_value().unwrap().into_owned())
                        })
                        .collect();
                    seen.inputs.push(attrs);
                }
                Event::Start(e) => {
                    let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                    for a in e.attributes() {
                        let a = a.unwrap();
                        let value = a.unescape_value().unwrap().into_owned();
                        match (name.as_str(), a.key.as_ref()) {
                            ("auth", b"id") => seen.auth_id = Some(value),
                            ("config-auth", b"type") => seen.kind = Some(value),
                            _ => {}
                        }
                    }
                    open.push(name);
                }
                Event::End(_) => {
                    open.pop();
                }
                Event::Text(t) => {
                    let text = t.unescape().unwrap().into_owned();
                    if let Some(name) = open.last().filter(|_| !text.trim().is_empty()) {
                        seen.texts.push((name.clone(), text));
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
        assert!(open.is_empty(), "unclosed elements {open:?}");
        seen
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn login_form_has_the_ocserv_shape() {
        let form = LoginForm {
            message: "Please enter your username and password.".into(),
            banner: None,
            error: None,
            fields: FormFields::UsernamePassword,
            groups: Vec::new(),
        };
        assert_eq!(
            render_login_form(&form),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <config-auth client=\"vpn\" type=\"auth-request\">\n\
             <version who=\"sg\">0.1(1)</version>\n\
             <auth id=\"main\">\n\
             <message>Please enter your username and password.</message>\n\
             <form method=\"post\" action=\"/auth\">\n\
             <input type=\"text\" name=\"username\" label=\"Username:\" />\n\
             <input type=\"password\" name=\"password\" label=\"Password:\" />\n\
             </form></auth>\n\
             </config-auth>\n"
        );
    }

    #[test]
    fn login_form_parses_back_with_hostile_text() {
        let form = LoginForm {
            message: "Login failed.\nPlease <b>enter</b> \"it\" & 'go'".into(),
            banner: Some("]]> <!-- \u{1} é".into()),
            error: Some("Login failed.".into()),
            fields: FormFields::Secondary {
                label: "Password2: \"x\" <y>".into(),
                secret: true,
            },
            groups: Vec::new(),
        };
        let seen = read_back(&render_login_form(&form));
        assert_eq!(seen.kind.as_deref(), Some("auth-request"));
        assert_eq!(seen.auth_id.as_deref(), Some("main"));
        assert_eq!(
            seen.texts,
            pairs(&[
                ("version", "0.1(1)"),
                ("banner", "]]> <!--   é"),
                ("message", form.message.as_str()),
                ("error", "Login failed."),
            ])
        );
        assert_eq!(
            seen.inputs,
            vec![pairs(&[
                ("type", "password"),
                ("name", "secondary_password"),
                ("label", "Password2: \"x\" <y>"),
            ])]
        );
    }

    #[test]
    fn group_choice_is_a_select_with_labels() {
        let form = LoginForm {
            message: "m".into(),
            banner: None,
            error: None,
            fields: FormFields::UsernamePassword,
            groups: vec![
                FormGroup {
                    value: "staff".into(),
                    label: "Staff <net> & \"co\"".into(),
                },
                FormGroup {
                    value: "a'b".into(),
                    label: "a'b".into(),
                },
            ],
        };
        let doc = render_login_form(&form);
        assert!(
            doc.contains(
                "<input type=\"password\" name=\"password\" label=\"Password:\" />\n\
                 <select name=\"group_list\" label=\"Group:\">\n\
                 <option value=\"staff\">Staff &lt;net&gt; &amp; &quot;co&quot;</option>\n\
                 <option value=\"a&apos;b\">a&apos;b</option>\n\
                 </select>\n</form>"
            ),
            "{doc}"
        );
        let seen = read_back(&doc);
        assert!(seen
            .texts
            .contains(&("option".into(), "Staff <net> & \"co\"".into())));
        // No choice: no select; a follow-up question never shows one.
        let plain = LoginForm {
            groups: Vec::new(),
            ..form.clone()
        };
        assert!(!render_login_form(&plain).contains("<select"));
        let secondary = LoginForm {
            fields: FormFields::Secondary {
                label: "OTP".into(),
                secret: true,
            },
            ..form
        };
        assert!(!render_login_form(&secondary).contains("<select"));
    }

    #[test]
    fn secondary_text_input() {
        let form = LoginForm {
            message: "Please enter your OTP.".into(),
            banner: None,
            error: None,
            fields: FormFields::Secondary {
                label: "Code:".into(),
                secret: false,
            },
            groups: Vec::new(),
        };
        let seen = read_back(&render_login_form(&form));
        assert_eq!(seen.inputs[0][0], ("type".into(), "text".into()));
    }

    #[test]
    fn complete_document() {
        let doc = render_complete(Some("Welcome & hello"), "tok_EN-123");
        assert!(doc.contains("<auth id=\"success\">"));
        assert!(doc.contains("<banner>Welcome &amp; hello</banner>"));
        let seen = read_back(&doc);
        assert_eq!(seen.kind.as_deref(), Some("complete"));
        assert_eq!(seen.auth_id.as_deref(), Some("success"));
        assert_eq!(
            seen.texts,
            pairs(&[
                ("version", "0.1(1)"),
                ("title", "SSL VPN Service"),
                ("banner", "Welcome & hello"),
                ("session-token", "tok_EN-123"),
            ])
        );
        assert!(!render_complete(None, "t").contains("<banner>"));
    }

    #[test]
    fn xml_safe_matches_escaping() {
        assert_eq!(xml_safe("a\u{0}b\tc\u{ffff}"), "a b\tc ");
    }
}
