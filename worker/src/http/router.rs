//! Which handler a request goes to (protocol.md §1.2, after ocserv src/worker-http.c
//! `known_urls`). Pure: method and target in, [`Route`] out.

use rocserv_proto::http::Method;

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /`, `/auth`, `/VPN` (also `/auth?...`, `/auth/...`): the login form.
    LoginForm,
    /// Any POST: a step of the login conversation (protocol.md §0.1: a POST to an unknown URL
    /// while unauthenticated is an auth POST).
    AuthStep,
    /// `CONNECT /CSCOSSLC/tunnel` (also without the slash: Clavister client).
    Tunnel,
    /// A fixed AnyConnect-compat answer.
    Stub(Stub),
    /// `GET /profiles/NAME` (also `/profiles%2FNAME`, the URL openconnect builds from the
    /// `webvpnc` cookie): the `user-profile`; [`profile_name`] says which one was asked for.
    Profile,
    /// Anything else: `404 Not found` and close.
    NotFound,
}

/// The AnyConnect stubs of protocol.md §1.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stub {
    pub content_type: &'static str,
    pub body: &'static str,
}

const MANIFEST: Stub = Stub {
    content_type: "text/xml",
    body: "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<vpn rev=\"1.0\">\n</vpn>\n",
};
const NO_UPDATE: Stub = Stub {
    content_type: "text/xml",
    body: "0,0,0000\n",
};
const DOWNLOADER: Stub = Stub {
    content_type: "application/x-shellscript",
    body: "#!/bin/sh\n\nexit 0\n",
};
const EMPTY_HTML: Stub = Stub {
    content_type: "text/html",
    body: "<html></html>\n",
};

/// Route one request.
pub fn route(method: &Method, target: &str) -> Route {
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    match method {
        Method::Connect => match path {
            "/CSCOSSLC/tunnel" | "CSCOSSLC/tunnel" => Route::Tunnel,
            _ => Route::NotFound,
        },
        Method::Post => Route::AuthStep,
        Method::Get => get(path),
        Method::Other(_) => Route::NotFound,
    }
}

/// The group a POST's target names with `select-group-by-url` (ocserv: any POST URL that is
/// not one of its known URLs and longer than `/`): the path without its leading `/` and
/// without a query. The name is the client's word; sec-mod checks it.
pub fn group_of_target(target: &str) -> Option<&str> {
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    let known = matches!(get(path), Route::LoginForm | Route::Stub(_))
        || matches!(path, "/svc" | "/CSCOSSLC/tunnel");
    let name = path.strip_prefix('/')?;
    (!known && !name.is_empty()).then_some(name)
}

fn get(path: &str) -> Route {
    match path {
        "/" | "/auth" | "/VPN" => Route::LoginForm,
        _ if path.starts_with("/auth/") => Route::LoginForm,
        _ if profile_name(path).is_some() => Route::Profile,
        "/VPNManifest.xml"
        | "/1/VPNManifest.xml"
        | "/+CSCOT+/translation-table"
        | "/+CSCOT+/oem-customization" => Route::Stub(MANIFEST),
        "/1/binaries/update.txt" => Route::Stub(NO_UPDATE),
        "/1/binaries/vpndownloader.sh" => Route::Stub(DOWNLOADER),
        "/1/index.html" | "/1/Linux" | "/1/Linux_64" | "/1/Windows" | "/1/Windows_ARM64"
        | "/1/Darwin_i386" | "/logout" => Route::Stub(EMPTY_HTML),
        _ => Route::NotFound,
    }
}

/// The profile name in a `/profiles/NAME` or `/profiles%2FNAME` target (query ignored).
pub fn profile_name(target: &str) -> Option<&str> {
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    let rest = path.strip_prefix("/profiles")?;
    let name = rest
        .strip_prefix('/')
        .or_else(|| rest.strip_prefix("%2F"))
        .or_else(|| rest.strip_prefix("%2f"))?;
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_from_urls() {
        for (target, want) in [
            ("/staff", Some("staff")),
            ("/staff?x=1", Some("staff")),
            ("/Staff%20Net", Some("Staff%20Net")),
            ("/a/b", Some("a/b")),
            ("/", None),
            ("/?x", None),
            ("/auth", None),
            ("/auth?a=b", None),
            ("/VPN", None),
            ("/svc", None),
            ("/1/index.html", None),
            ("/+CSCOT+/translation-table", None),
            ("staff", None),
        ] {
            assert_eq!(group_of_target(target), want, "{target}");
        }
    }

    #[test]
    fn routes() {
        assert_eq!(route(&Method::Get, "/"), Route::LoginForm);
        assert_eq!(route(&Method::Get, "/auth?x=1"), Route::LoginForm);
        assert_eq!(route(&Method::Get, "/auth/foo"), Route::LoginForm);
        assert_eq!(route(&Method::Get, "/VPN"), Route::LoginForm);
        assert_eq!(route(&Method::Post, "/"), Route::AuthStep);
        assert_eq!(route(&Method::Post, "/some-group"), Route::AuthStep);
        assert_eq!(route(&Method::Connect, "/CSCOSSLC/tunnel"), Route::Tunnel);
        assert_eq!(route(&Method::Connect, "CSCOSSLC/tunnel"), Route::Tunnel);
        assert_eq!(route(&Method::Connect, "/other"), Route::NotFound);
        assert_eq!(route(&Method::Get, "/etc/passwd"), Route::NotFound);
        assert_eq!(route(&Method::Get, "/profiles/p.xml"), Route::Profile);
        assert_eq!(route(&Method::Get, "/profiles%2Fp.xml"), Route::Profile);
        assert_eq!(route(&Method::Get, "/profiles/"), Route::NotFound);
        assert_eq!(route(&Method::Get, "/profilesX"), Route::NotFound);
        assert_eq!(profile_name("/profiles%2fp.xml?x=1"), Some("p.xml"));
        assert_eq!(profile_name("/profiles/../../etc"), Some("../../etc"));
        assert_eq!(route(&Method::Other("PUT".into()), "/"), Route::NotFound);
        assert_eq!(
            route(&Method::Get, "/1/binaries/update.txt"),
            Route::Stub(NO_UPDATE)
        );
        assert_eq!(
            route(
                &Method::Get,
                "/+CSCOT+/translation-table?textdomain=AnyConnect&type=manifest"
            ),
            Route::Stub(MANIFEST)
        );
    }
}
