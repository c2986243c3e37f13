//! `auth = "radius[config=FILE,groupconfig=BOOL,nas-identifier=NAME]"`: the user's password goes
//! to a RADIUS server in an Access-Request (RFC 2865 §4.1); an Access-Challenge becomes a second
//! form showing its Reply-Message, answered with the State echoed (RFC 2865 §4.4); an
//! Access-Accept's attributes become the session's policy ([`granted`]).
//!
//! The conversation runs as a task on the runtime ([`crate::radius_client`]): a slow or dead
//! server delays only its own user's login, bounded by radcli's `radius_timeout` and
//! `radius_retries` (and by `auth-timeout`, which abandons the attempt).
//!
//! Which attributes are read is ocserv's list (src/auth/radius.c, doc/README-radius.md):
//! Framed-IP-Address, Framed-IPv6-Address, Delegated-IPv6-Prefix, Framed-Route,
//! Framed-IPv6-Route, Framed-IPv6-Prefix and Route-IPv6-Information (routes), the Microsoft DNS
//! servers, DNS-Server-IPv6-Address, Acct-Interim-Interval, Session-Timeout; plus Idle-Timeout.
//! Not read: Framed-IP-Netmask (the pool's prefix applies). ocserv reads no bandwidth attribute.
//! With `groupconfig`, Class names the group (ocserv's behaviour with that option) and routes and
//! DNS apply; without it only addresses and timers do.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rocserv_proto::config::{valid_group_name, IpNet, Route};
use rocserv_proto::policy::file::PolicyFile;
use rocserv_proto::radius::packet::{self, attr, value, Attribute, Code, Packet, Sent};

use super::{
    answer_shape_ok, check_login_shape, Attempt, AttemptPeer, AuthBackend, Granted, Login,
    Rejection, Verdict,
};
use crate::radius_client::Client;

/// Most Access-Challenge rounds in one login (each is a second form).
const MAX_ROUNDS: usize = 5;
/// Longest challenge prompt passed to the worker, in characters.
const MAX_PROMPT: usize = 1024;
/// Shown when a challenge has no Reply-Message.
const DEFAULT_PROMPT: &str = "Please enter your response";
/// NAS-Identifier when none is configured: RFC 2865 §4.1 wants NAS-IP-Address or
/// NAS-Identifier in every Access-Request, and sec-mod does not know which of the host's
/// addresses the server sees.
pub const DEFAULT_NAS_IDENTIFIER: &str = "rocserv";

/// The `radius` method.
#[derive(Debug, Clone)]
pub struct Radius {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    groupconfig: bool,
    nas_identifier: String,
    /// Whether Access-Accept/Reject/Challenge must carry a Message-Authenticator from the first
    /// answer on. Off: servers before the BlastRADIUS fixes (FreeRADIUS 3.2.1 in Debian 12) send
    /// none; one that is present is always checked, and a server that sent one must always
    /// (`radius_client::Server`; doc/security/radius.md).
    require_message_authenticator: bool,
}

impl Radius {
    pub fn new(client: Client, groupconfig: bool, nas_identifier: Option<String>) -> Self {
        let nas_identifier = nas_identifier
            .or_else(|| client.nas_identifier.clone())
            .unwrap_or_else(|| DEFAULT_NAS_IDENTIFIER.to_owned());
        Self {
            inner: Arc::new(Inner {
                client,
                groupconfig,
                nas_identifier,
                require_message_authenticator: false,
            }),
        }
    }
}

impl AuthBackend for Radius {
    fn name(&self) -> &'static str {
        "radius"
    }

    fn begin(&self, login: Login) -> Attempt {
        let (attempt, mut peer) = Attempt::channel();
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            let verdict = inner.login(&login, &mut peer).await;
            peer.finish_async(verdict).await;
        });
        attempt
    }
}

impl Inner {
    async fn login(&self, login: &Login, peer: &mut AttemptPeer) -> Verdict {
        if let Err(r) = check_login_shape(login) {
            return Verdict::Rejected(r);
        }
        let username = match &self.client.default_realm {
            Some(realm) if !login.username.contains('@') => format!("{}@{realm}", login.username),
            _ => login.username.clone(),
        };
        let base = request_attributes(&username, &self.nas_identifier, login);
        let mut password = login.password.clone();
        let mut state: Option<Vec<u8>> = None;
        for _ in 0..MAX_ROUNDS {
            let mut attrs = base.clone();
            if let Some(state) = &state {
                attrs.push(Attribute {
                    ty: attr::STATE,
                    value: state.clone(),
                });
            }
            let answer = self
                .client
                .exchange(
                    &self.client.auth,
                    |secret, id, auth| {
                        let bytes = packet::access_request(
                            id,
                            &auth,
                            &attrs,
                            Some(password.as_bytes()),
                            secret,
                            true,
                        )?;
                        Ok((
                            bytes,
                            Sent {
                                code: Code::AccessRequest,
                                id,
                                authenticator: auth,
                            },
                        ))
                    },
                    self.require_message_authenticator,
                )
                .await;
            let answer = match answer {
                Ok(p) => p,
                Err(e) => return Verdict::Rejected(Rejection::Radius(e.to_string())),
            };
            match answer.code {
                Code::AccessAccept => {
                    return match granted(&answer, self.groupconfig, login.group.as_deref()) {
                        Ok(g) => Verdict::Accepted(g),
                        Err(r) => Verdict::Rejected(r),
                    }
                }
                Code::AccessChallenge => {
                    let message = reply_message(&answer).unwrap_or_else(|| DEFAULT_PROMPT.into());
                    state = answer.first(attr::STATE).map(<[u8]>::to_vec);
                    let Some(next) = peer.ask_async(message, true).await else {
                        return Verdict::Rejected(Rejection::BackendGone);
                    };
                    if !answer_shape_ok(&next) || next.len() > packet::MAX_PASSWORD {
                        return Verdict::Rejected(Rejection::Malformed);
                    }
                    password = next;
                }
                _ => return Verdict::Rejected(Rejection::WrongPassword),
            }
        }
        Verdict::Rejected(Rejection::Radius(format!(
            "more than {MAX_ROUNDS} Access-Challenge rounds"
        )))
    }
}

/// The attributes of every Access-Request of a login.
fn request_attributes(username: &str, nas_identifier: &str, login: &Login) -> Vec<Attribute> {
    let mut attrs = vec![
        Attribute::text(attr::USER_NAME, username),
        Attribute::text(attr::NAS_IDENTIFIER, nas_identifier),
        Attribute::int(attr::SERVICE_TYPE, value::SERVICE_FRAMED),
        Attribute::int(attr::NAS_PORT_TYPE, value::PORT_VIRTUAL),
    ];
    if let Some(peer) = login.peer {
        attrs.push(Attribute::text(
            attr::CALLING_STATION_ID,
            &peer.ip().to_string(),
        ));
    }
    if let Some(vhost) = &login.vhost {
        attrs.push(Attribute::text(attr::CALLED_STATION_ID, vhost));
    }
    // ocserv sends the user agent as Connect-Info; truncated to an attribute's size.
    let ua = &login.facts.user_agent;
    if !ua.is_empty() {
        let mut end = ua.len().min(packet::MAX_VALUE);
        while !ua.is_char_boundary(end) {
            end = end.saturating_sub(1);
        }
        attrs.push(Attribute::text(
            attr::CONNECT_INFO,
            ua.get(..end).unwrap_or_default(),
        ));
    }
    attrs
}

/// The Reply-Messages of a packet, joined (RFC 2865 §5.18: several are concatenated).
fn reply_message(p: &Packet) -> Option<String> {
    let text: String = p
        .all(attr::REPLY_MESSAGE)
        .map(String::from_utf8_lossy)
        .collect::<Vec<_>>()
        .join("\n");
    // The worker shows it in the form; a server's long text is cut.
    let text: String = text
        .chars()
        .filter(|c| *c == '\n' || !c.is_control())
        .take(MAX_PROMPT)
        .collect();
    (!text.trim().is_empty()).then_some(text)
}

/// What an Access-Accept grants; `requested` is the group the client asked for.
pub fn granted(
    p: &Packet,
    groupconfig: bool,
    requested: Option<&str>,
) -> Result<Granted, Rejection> {
    // ocserv refuses an Accept for another service than Framed (src/auth/radius.c).
    if let Some(service) = p.first(attr::SERVICE_TYPE).and_then(packet::int) {
        if service != value::SERVICE_FRAMED {
            return Err(Rejection::Radius(format!(
                "Access-Accept for Service-Type {service}, not Framed"
            )));
        }
    }
    // RFC 2865 §5.8: 255.255.255.255 lets the user choose and 255.255.255.254 lets the NAS
    // choose; both mean "from the pool" here.
    let mut f = PolicyFile {
        explicit_ipv4: p
            .first(attr::FRAMED_IP_ADDRESS)
            .and_then(packet::ipv4)
            .filter(|a| a.octets() != [255, 255, 255, 255] && a.octets() != [255, 255, 255, 254]),
        ..PolicyFile::default()
    };
    f.explicit_ipv6 = p.first(attr::FRAMED_IPV6_ADDRESS).and_then(packet::ipv6);
    // Delegated-IPv6-Prefix is the client's IPv6 subnet (ocserv doc/README-radius.md).
    if let Some((prefix, len)) = p
        .first(attr::DELEGATED_IPV6_PREFIX)
        .and_then(packet::ipv6_prefix)
    {
        if f.explicit_ipv6.is_none() {
            f.explicit_ipv6 = Some(prefix);
            f.ipv6_subnet_prefix = Some(len);
        }
    }
    // 0 is "no limit" in both (RFC 2865 §5.27, §5.28), as in the policy files.
    let secs = |ty| {
        p.first(ty)
            .and_then(packet::int)
            .map(|s| (s != 0).then_some(s))
    };
    f.session_timeout = secs(attr::SESSION_TIMEOUT);
    f.idle_timeout = secs(attr::IDLE_TIMEOUT);
    // The worker reports traffic at this interval and each report becomes an Interim-Update
    // (ocserv uses the server's interval the same way).
    f.stats_report_time = p
        .first(attr::ACCT_INTERIM_INTERVAL)
        .and_then(packet::int)
        .filter(|s| *s > 0);
    let mut group = String::new();
    if groupconfig {
        if let Some(class) = p.first(attr::CLASS) {
            group = class_group(class, requested).unwrap_or_default();
        }
        for ty in [attr::FRAMED_ROUTE, attr::FRAMED_IPV6_ROUTE] {
            f.routes
                .extend(p.all(ty).filter_map(framed_route).map(Route::Net));
        }
        // IPv6 routes as prefixes, as ocserv reads them (doc/README-radius.md).
        for ty in [attr::FRAMED_IPV6_PREFIX, attr::ROUTE_IPV6_INFORMATION] {
            f.routes.extend(
                p.all(ty)
                    .filter_map(packet::ipv6_prefix)
                    .map(|(addr, prefix)| {
                        Route::Net(IpNet {
                            addr: IpAddr::V6(addr),
                            prefix,
                        })
                    }),
            );
        }
        let ms = |ty| {
            p.vendor(packet::VENDOR_MICROSOFT, ty)
                .into_iter()
                .filter_map(packet::ipv4)
                .map(IpAddr::V4)
        };
        f.dns.extend(ms(packet::MS_PRIMARY_DNS_SERVER));
        f.dns.extend(ms(packet::MS_SECONDARY_DNS_SERVER));
        f.dns.extend(
            p.all(attr::DNS_SERVER_IPV6_ADDRESS)
                .filter_map(packet::ipv6)
                .map(IpAddr::V6),
        );
    }
    if let Some(req) = requested {
        if req != group {
            return Err(Rejection::GroupNotAllowed(req.to_owned()));
        }
    }
    let policy = (f != PolicyFile::default()).then(|| Box::new(f));
    Ok(Granted {
        group,
        policy,
        ..Granted::default()
    })
}

/// The group a Class value names: the text itself, or with an `OU=` prefix a `;`-separated list
/// of which the requested group (if in it) or else the first is taken. Values that cannot be a
/// group name are ignored.
fn class_group(class: &[u8], requested: Option<&str>) -> Option<String> {
    let text = std::str::from_utf8(class).ok()?.trim_end_matches('\0');
    let names: Vec<&str> = match text.strip_prefix("OU=") {
        Some(list) => list
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect(),
        None => vec![text],
    };
    let pick = requested
        .filter(|r| names.contains(r))
        .or_else(|| names.first().copied())?;
    valid_group_name(pick).then(|| pick.to_owned())
}

/// A Framed-Route / Framed-IPv6-Route value: `prefix/len [gateway [metric]]` (RFC 2865 §5.22,
/// RFC 3162 §2.5); only the network is used (the tunnel is the gateway).
fn framed_route(v: &[u8]) -> Option<IpNet> {
    let text = std::str::from_utf8(v).ok()?;
    let net = text.split_whitespace().next()?;
    let (addr, len) = net.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let prefix: u8 = len.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some(IpNet { addr, prefix })
}

/// The client's address for Calling-Station-Id (also used by accounting).
pub fn station_id(peer: SocketAddr) -> String {
    peer.ip().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn accept(attrs: Vec<Attribute>) -> Packet {
        Packet {
            code: Code::AccessAccept,
            id: 0,
            authenticator: [0; 16],
            attributes: attrs,
        }
    }

    #[test]
    fn accept_attributes_become_policy() {
        let mut ms = vec![0, 0, 1, 0x37, 28, 6, 10, 0, 0, 53];
        ms.extend_from_slice(&[29, 6, 10, 0, 0, 54]);
        let p = accept(vec![
            Attribute::ipv4(attr::FRAMED_IP_ADDRESS, Ipv4Addr::new(10, 9, 0, 7)),
            Attribute::int(attr::SESSION_TIMEOUT, 3600),
            Attribute::int(attr::IDLE_TIMEOUT, 0),
            Attribute::int(attr::ACCT_INTERIM_INTERVAL, 60),
            Attribute::text(attr::CLASS, "engineers"),
            Attribute::text(attr::FRAMED_ROUTE, "192.168.50.0/24 0.0.0.0 1"),
            Attribute::text(attr::FRAMED_IPV6_ROUTE, "2001:db8:5::/48"),
            Attribute::text(attr::FRAMED_ROUTE, "garbage"),
            Attribute {
                ty: attr::VENDOR_SPECIFIC,
                value: ms,
            },
            Attribute::ipv6(attr::FRAMED_IPV6_ADDRESS, "fd00::5".parse().unwrap()),
            Attribute {
                ty: attr::FRAMED_IPV6_PREFIX,
                value: vec![0, 32, 0x20, 0x01, 0x0d, 0xb8],
            },
        ]);
        let g = granted(&p, true, None).unwrap();
        assert_eq!(g.group, "engineers");
        let f = g.policy.unwrap();
        assert_eq!(f.explicit_ipv4, Some(Ipv4Addr::new(10, 9, 0, 7)));
        assert_eq!(
            f.explicit_ipv6,
            Some("fd00::5".parse::<Ipv6Addr>().unwrap())
        );
        assert_eq!(f.session_timeout, Some(Some(3600)));
        assert_eq!(f.idle_timeout, Some(None));
        assert_eq!(f.stats_report_time, Some(60));
        assert_eq!(f.routes.len(), 3);
        assert_eq!(
            f.routes[2],
            Route::Net(IpNet {
                addr: "2001:db8::".parse().unwrap(),
                prefix: 32
            })
        );
        assert_eq!(
            f.dns,
            [
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 53)),
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 54))
            ]
        );
        // Without groupconfig: addresses and timers only, no group.
        let g = granted(&p, false, None).unwrap();
        assert_eq!(g.group, "");
        let f = g.policy.unwrap();
        assert!(f.routes.is_empty() && f.dns.is_empty());
        assert_eq!(f.explicit_ipv4, Some(Ipv4Addr::new(10, 9, 0, 7)));
    }

    #[test]
    fn delegated_prefix_is_the_subnet() {
        let p = accept(vec![Attribute {
            ty: attr::DELEGATED_IPV6_PREFIX,
            value: vec![0, 64, 0xfd, 0, 0, 0x31, 0, 1, 0, 2],
        }]);
        let f = granted(&p, false, None).unwrap().policy.unwrap();
        assert_eq!(f.explicit_ipv6, Some("fd00:31:1:2::".parse().unwrap()));
        assert_eq!(f.ipv6_subnet_prefix, Some(64));
    }

    #[test]
    fn groups_from_class() {
        let p = accept(vec![Attribute::text(attr::CLASS, "OU=admins;staff")]);
        assert_eq!(granted(&p, true, None).unwrap().group, "admins");
        assert_eq!(granted(&p, true, Some("staff")).unwrap().group, "staff");
        assert_eq!(
            granted(&p, true, Some("root")),
            Err(Rejection::GroupNotAllowed("root".into()))
        );
        // A Class that cannot be a group name is no group; asking for one then fails.
        let p = accept(vec![Attribute::text(attr::CLASS, "a/b")]);
        assert_eq!(granted(&p, true, None).unwrap().group, "");
        assert!(granted(&accept(vec![]), true, Some("x")).is_err());
        assert_eq!(granted(&accept(vec![]), true, None).unwrap().policy, None);
    }

    /// The conversation: the Access-Challenge's Reply-Message is the second question, the answer
    /// goes back with the State; the Access-Accept's Framed-IP-Address is granted.
    #[tokio::test]
    async fn a_challenge_is_asked_and_its_state_echoed() {
        let srv = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = srv.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            let (n, from) = srv.recv_from(&mut buf).await.unwrap();
            let first = packet::parse(&buf[..n]).unwrap();
            assert_eq!(first.first(attr::USER_NAME), Some(&b"ann"[..]));
            assert_eq!(first.first(attr::STATE), None);
            assert_eq!(
                first.first(attr::CALLING_STATION_ID),
                Some(&b"192.0.2.7"[..])
            );
            let challenge = packet::response(
                Code::AccessChallenge,
                first.id,
                &first.authenticator,
                &[
                    Attribute::text(attr::REPLY_MESSAGE, "Token code?"),
                    Attribute::text(attr::STATE, "s-1"),
                ],
                b"k",
            )
            .unwrap();
            srv.send_to(&challenge, from).await.unwrap();
            let (n, from) = srv.recv_from(&mut buf).await.unwrap();
            let second = packet::parse(&buf[..n]).unwrap();
            assert_eq!(second.first(attr::STATE), Some(&b"s-1"[..]));
            // The answer is hidden with the new request's authenticator.
            let hidden = packet::hide_password(b"777", b"k", &second.authenticator).unwrap();
            assert_eq!(second.first(attr::USER_PASSWORD), Some(hidden.as_slice()));
            let accept = packet::response(
                Code::AccessAccept,
                second.id,
                &second.authenticator,
                &[Attribute::ipv4(
                    attr::FRAMED_IP_ADDRESS,
                    Ipv4Addr::new(10, 0, 0, 9),
                )],
                b"k",
            )
            .unwrap();
            srv.send_to(&accept, from).await.unwrap();
        });
        let client = Client::for_tests(&[(addr, "k")], std::time::Duration::from_secs(2), 1);
        let backend = Radius::new(client, false, None);
        let mut attempt = backend.begin(Login {
            username: "ann".into(),
            password: "pw".into(),
            peer: Some("192.0.2.7:5555".parse().unwrap()),
            ..Login::default()
        });
        assert_eq!(
            attempt.next().await,
            super::super::Event::Challenge {
                message: "Token code?".into(),
                secret: true
            }
        );
        assert!(attempt.answer("777".into()).await);
        let super::super::Event::Done(Verdict::Accepted(g)) = attempt.next().await else {
            panic!("not accepted");
        };
        assert_eq!(
            g.policy.unwrap().explicit_ipv4,
            Some(Ipv4Addr::new(10, 0, 0, 9))
        );
        server.await.unwrap();
    }

    #[test]
    fn other_service_types_are_refused() {
        let p = accept(vec![Attribute::int(attr::SERVICE_TYPE, 6)]);
        assert!(granted(&p, false, None).is_err());
        let p = accept(vec![Attribute::int(attr::SERVICE_TYPE, 2)]);
        assert!(granted(&p, false, None).is_ok());
    }
}
