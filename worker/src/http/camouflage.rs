//! `camouflage` (ocserv 1.2, `doc/sample.config`): until a request of the connection carries
//! the secret as its whole URL query (`https://host/?SECRET`), every request gets the answer
//! of a plain web server (`401` with the realm, or `404`) and the connection is closed, so a
//! scanner sees no VPN. A CONNECT passes only with a cookie main accepts (openconnect does not
//! repeat the query there). Pure: a request target in, a decision or a response out.

use ring::digest::{digest, Digest, SHA256};
use rocserv_proto::config::{same_host, Camouflage};
use rocserv_proto::http::Response;

/// The gate of one connection.
#[derive(Debug)]
pub struct Gate {
    /// SHA-256 of the secret: a query is hashed and the two digests compared in full, so
    /// neither the secret's length nor how much of it a guess got right shows in the time
    /// taken.
    secret: Digest,
    realm: Option<String>,
}

/// The camouflage for a client that sent `sni`: the `[vhost:NAME]` it names (the same choice
/// as the certificate's), else the default section's.
pub fn choose<'a>(
    default: Option<&'a Camouflage>,
    vhosts: &'a [(String, Option<Camouflage>)],
    sni: Option<&str>,
) -> Option<&'a Camouflage> {
    let vhost = sni.and_then(|sni| vhosts.iter().find(|(name, _)| same_host(name, sni)));
    match vhost {
        Some((_, camouflage)) => camouflage.as_ref(),
        None => default,
    }
}

impl Gate {
    pub fn new(camouflage: &Camouflage) -> Self {
        Self {
            secret: digest(&SHA256, camouflage.secret.0.as_bytes()),
            realm: camouflage.realm.clone(),
        }
    }

    /// `target` without its query when the query (everything after the first `?`, RFC 3986
    /// §3.4; ocserv compares the same part) is the secret.
    pub fn pass<'t>(&self, target: &'t str) -> Option<&'t str> {
        let (path, query) = target.split_once('?')?;
        let given = digest(&SHA256, query.as_bytes());
        same_digest(given.as_ref(), self.secret.as_ref()).then_some(path)
    }

    /// What a plain web server says to a request it will not serve; the caller closes the
    /// connection after it (each probe then costs a connection's ban points). No header or body
    /// of ours: no `X-Transcend-Version`, no `included-http-headers`.
    pub fn answer(&self) -> Response {
        let (response, title) = match &self.realm {
            // RFC 7617 §2 (the parser keeps `"` and `\` out of the realm).
            Some(realm) => (
                Response::new(401, "Unauthorized")
                    .header("WWW-Authenticate", format!("Basic realm=\"{realm}\"")),
                "401 Unauthorized",
            ),
            None => (Response::new(404, "Not Found"), "404 Not Found"),
        };
        response
            .header("Content-Type", "text/html")
            .header("Connection", "close")
            .body(format!(
                "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n\
                 <center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
            ))
    }
}

/// Equal-length digests compared without an early exit.
fn same_digest(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocserv_proto::config::Secret;

    fn camouflage(realm: Option<&str>) -> Camouflage {
        Camouflage {
            secret: Secret("mysecretkey".into()),
            realm: realm.map(str::to_owned),
        }
    }

    #[test]
    fn only_the_whole_query_passes() {
        let gate = Gate::new(&camouflage(None));
        assert_eq!(gate.pass("/?mysecretkey"), Some("/"));
        assert_eq!(gate.pass("/staff?mysecretkey"), Some("/staff"));
        assert_eq!(gate.pass("/auth?mysecretkey"), Some("/auth"));
        for target in [
            "/",
            "/mysecretkey",
            "/?",
            "/?mysecretke",
            "/?mysecretkeyy",
            "/?mysecretkey&x=1",
            "/?x=1&mysecretkey",
            "/?MYSECRETKEY",
            "/??mysecretkey",
            "/?mysecretkey#",
            "/?%6Dysecretkey",
            "/+CSCOE+/logon.html",
            "/auth",
        ] {
            assert_eq!(gate.pass(target), None, "{target}");
        }
    }

    fn encoded(response: &Response) -> String {
        let mut out = Vec::new();
        response.encode(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_answer_is_a_plain_web_servers() {
        let not_found = encoded(&Gate::new(&camouflage(None)).answer());
        assert!(
            not_found.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{not_found}"
        );
        let realm = encoded(&Gate::new(&camouflage(Some("Restricted Content"))).answer());
        assert!(
            realm.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
            "{realm}"
        );
        assert!(realm.contains("\r\nWWW-Authenticate: Basic realm=\"Restricted Content\"\r\n"));
        for text in [&not_found, &realm] {
            assert!(text.contains("\r\nConnection: close\r\n"));
            let head = text.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
            for tell in ["x-", "cookie", "rocserv", "ocserv", "xml", "anyconnect"] {
                assert!(!head.contains(tell), "{tell} in {head}");
            }
            assert!(!text.to_ascii_lowercase().contains("vpn"), "{text}");
        }
    }

    #[test]
    fn the_vhost_named_by_sni_decides() {
        let default = camouflage(Some("Default"));
        let vhosts = vec![
            ("open.example".to_owned(), None),
            (
                "hidden.example".to_owned(),
                Some(camouflage(Some("Hidden"))),
            ),
        ];
        let realm = |sni| choose(Some(&default), &vhosts, sni).map(|c| c.realm.clone());
        assert_eq!(realm(None), Some(Some("Default".into())));
        assert_eq!(realm(Some("other.example")), Some(Some("Default".into())));
        assert_eq!(realm(Some("OPEN.example.")), None);
        assert_eq!(realm(Some("hidden.example")), Some(Some("Hidden".into())));
        assert_eq!(choose(None, &[], Some("x")), None);
    }
}
