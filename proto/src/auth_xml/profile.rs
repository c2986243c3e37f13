//! `user-profile` in the login reply: the `<vpn-profile-manifest>` Cisco Secure Client (and
//! openconnect `-x`) reads from the `complete` document, and the `webvpnc` cookie ocserv sends
//! beside the session cookie.
//!
//! Facts (ocserv `worker-auth.c`, openconnect `auth.c`): the manifest sits in
//! `<config client="vpn" type="private">` as `<vpn rev="1.0"><file type="profile"
//! service-type="user"><uri>/profiles/NAME</uri><hash type="sha1">HEX</hash></file></vpn>`.
//! ocserv clears `webvpnc` and then sets it to `bu:/&p:t&iu:1/&sh:CERT_SHA1`, adding
//! `&lu:/+CSCOT+/translation-table?...&fu:profiles%2FNAME&fh:PROFILE_SHA1` with a profile;
//! openconnect joins `bu` and `fu` into the URL it fetches (`/profiles%2FNAME`) and checks the
//! downloaded file against `fh`, comparing the hex without case.

/// The manifest element for the profile `name` whose SHA-1 is `sha1` (hex). Both come from
/// main: `name` passed the configuration's file-name check (letters, digits, `_`, `-`, `.`),
/// `sha1` is hex; they are escaped anyway.
pub fn manifest(name: &str, sha1: &str) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(
        "<config client=\"vpn\" type=\"private\"><vpn-profile-manifest><vpn rev=\"1.0\">\
         <file type=\"profile\" service-type=\"user\"><uri>/profiles/",
    );
    super::render::escape_into(&mut out, name);
    out.push_str("</uri><hash type=\"sha1\">");
    super::render::escape_into(&mut out, sha1);
    out.push_str("</hash></file></vpn></vpn-profile-manifest>\n</config>");
    out
}

/// `document` (a `complete` reply from [`super::render_complete`]) with `element` added as
/// the last child of its root, `<config-auth>`.
pub fn append_to_root(document: &str, element: &str) -> String {
    const END: &str = "</config-auth>";
    match document.rfind(END) {
        Some(at) => {
            let (head, tail) = document.split_at(at);
            format!("{head}{element}\n{tail}")
        }
        None => document.to_owned(),
    }
}

/// The two `Set-Cookie` values of `webvpnc`, in ocserv's order: the clearing one, then the
/// one with the server certificate's SHA-1 and, with a profile, where to fetch it.
pub fn webvpnc_cookies(cert_sha1: &str, profile: Option<(&str, &str)>) -> [String; 2] {
    let clear =
        "webvpnc=; expires=Thu, 01 Jan 1970 22:00:00 GMT; path=/; Secure; HttpOnly".to_owned();
    let mut set = format!("webvpnc=bu:/&p:t&iu:1/&sh:{}", cookie_safe(cert_sha1));
    if let Some((name, sha1)) = profile {
        set.push_str(
            "&lu:/+CSCOT+/translation-table?textdomain%3DAnyConnect%26type%3Dmanifest\
             &fu:profiles%2F",
        );
        set.push_str(&cookie_safe(name));
        set.push_str("&fh:");
        set.push_str(&cookie_safe(sha1));
    }
    set.push_str("; path=/; Secure; HttpOnly");
    [clear, set]
}

/// Only what may stand in a cookie value unquoted and cannot start another field.
fn cookie_safe(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth_xml::render_complete;

    #[test]
    fn manifest_in_the_complete_document() {
        let doc = render_complete(None, "TOKEN");
        let with = append_to_root(&doc, &manifest("profile.xml", "AB12"));
        assert!(with.ends_with(
            "<config client=\"vpn\" type=\"private\"><vpn-profile-manifest><vpn rev=\"1.0\">\
             <file type=\"profile\" service-type=\"user\"><uri>/profiles/profile.xml</uri>\
             <hash type=\"sha1\">AB12</hash></file></vpn></vpn-profile-manifest>\n</config>\n\
             </config-auth>\n"
        ));
        assert!(with.starts_with(doc.trim_end_matches("</config-auth>\n")));
        assert_eq!(append_to_root("no root", "<x/>"), "no root");
        assert!(manifest("a<b", "&").contains("/profiles/a&lt;b</uri><hash type=\"sha1\">&amp;<"));
    }

    #[test]
    fn webvpnc_like_ocserv() {
        let [clear, plain] = webvpnc_cookies("C0FFEE", None);
        assert_eq!(
            clear,
            "webvpnc=; expires=Thu, 01 Jan 1970 22:00:00 GMT; path=/; Secure; HttpOnly"
        );
        assert_eq!(
            plain,
            "webvpnc=bu:/&p:t&iu:1/&sh:C0FFEE; path=/; Secure; HttpOnly"
        );
        let [_, with] = webvpnc_cookies("C0FFEE", Some(("p.xml", "AB12")));
        assert_eq!(
            with,
            "webvpnc=bu:/&p:t&iu:1/&sh:C0FFEE&lu:/+CSCOT+/translation-table?textdomain%3D\
             AnyConnect%26type%3Dmanifest&fu:profiles%2Fp.xml&fh:AB12; path=/; Secure; HttpOnly"
        );
        let [_, odd] = webvpnc_cookies("A; x=1\r\n", Some(("p;q", "&")));
        assert!(odd.starts_with("webvpnc=bu:/&p:t&iu:1/&sh:Ax1&"), "{odd}");
        crate::http::check_header("Set-Cookie", &odd).unwrap();
    }
}
