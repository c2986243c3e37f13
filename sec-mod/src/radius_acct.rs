//! `acct = "radius[config=FILE,nas-identifier=NAME]"`: every tunnel's Start, Interim-Update (at
//! each traffic report: `stats-report-time`, or the Access-Accept's Acct-Interim-Interval, which
//! the RADIUS backend put in the session's policy) and Stop go to the accounting servers as
//! Accounting-Requests (RFC 2866, Interim-Update RFC 2869 §5.1).
//!
//! The sink only queues ([`Sink::event`] must not block); one task sends the records in order,
//! so a Stop never overtakes its Start, and a dead server delays accounting only. When the queue
//! is full, records are dropped with a log line.

use std::sync::Arc;
use std::time::SystemTime;

use rocserv_proto::ipc::main_secmod::EndCause;
use rocserv_proto::radius::packet::{self, attr, value, Attribute, Code, Sent};
use tokio::sync::mpsc;

use crate::accounting::{Event, Record, Sink};
use crate::auth::radius::{station_id, DEFAULT_NAS_IDENTIFIER};
use crate::radius_client::Client;

/// Records waiting for the sending task.
const QUEUE: usize = 4096;

/// The RADIUS accounting sink of one section.
#[derive(Debug)]
pub struct RadiusAcct {
    /// The section whose sessions this sink accounts (`None`: the default one).
    vhost: Option<String>,
    queue: mpsc::Sender<Event>,
}

impl RadiusAcct {
    /// Start the sending task (needs the runtime).
    pub fn start(client: Client, nas_identifier: Option<String>, vhost: Option<String>) -> Self {
        let nas = nas_identifier
            .or_else(|| client.nas_identifier.clone())
            .unwrap_or_else(|| DEFAULT_NAS_IDENTIFIER.to_owned());
        let (queue, mut rx) = mpsc::channel::<Event>(QUEUE);
        let client = Arc::new(client);
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                send(&client, &nas, &event).await;
            }
        });

        Self { vhost, queue }
    }
}

impl Sink for RadiusAcct {
    fn name(&self) -> &'static str {
        "radius"
    }

    fn event(&self, event: &Event) {
        if event.record().vhost != self.vhost {
            return;
        }
        if self.queue.try_send(event.clone()).is_err() {
            log::warn!(
                "RADIUS accounting: queue full, record for session {} dropped",
                event.record().sid
            );
        }
    }
}

/// Send one record; the user name gets radcli's `default_realm` as in the Access-Request (as
/// ocserv).
async fn send(client: &Client, nas: &str, event: &Event) {
    let mut attrs = attributes(nas, event, SystemTime::now());
    if let Some(realm) = &client.default_realm {
        let name = &event.record().username;
        if !name.contains('@') {
            for a in attrs.iter_mut().filter(|a| a.ty == attr::USER_NAME) {
                *a = Attribute::text(attr::USER_NAME, &format!("{name}@{realm}"));
            }
        }
    }
    let result = client
        .exchange(
            &client.acct,
            |secret, id, _auth| {
                let (bytes, authenticator) = packet::accounting_request(id, &attrs, secret)?;
                Ok((
                    bytes,
                    Sent {
                        code: Code::AccountingRequest,
                        id,
                        authenticator,
                    },
                ))
            },
            false,
        )
        .await;
    if let Err(e) = result {
        log::warn!(
            "RADIUS accounting for session {} not recorded: {e}",
            event.record().sid
        );
    }
}

/// Acct-Session-Id: the session and its tunnel (a takeover gives a session a second tunnel with
/// its own Start and Stop).
pub fn session_id(record: &Record) -> String {
    format!("{}-{}", record.sid, record.worker.0)
}

/// RFC 2866 §5.10 causes for ours.
pub fn terminate_cause(cause: EndCause) -> u32 {
    match cause {
        EndCause::UserRequest => value::CAUSE_USER_REQUEST,
        EndCause::LostCarrier => value::CAUSE_LOST_CARRIER,
        EndCause::IdleTimeout => value::CAUSE_IDLE_TIMEOUT,
        EndCause::SessionTimeout => value::CAUSE_SESSION_TIMEOUT,
        EndCause::AdminReset | EndCause::Policy => value::CAUSE_ADMIN_RESET,
        EndCause::Takeover => value::CAUSE_LOST_SERVICE,
        EndCause::Violation => value::CAUSE_NAS_ERROR,
        EndCause::ServerShutdown => value::CAUSE_ADMIN_REBOOT,
    }
}

/// Octets as the low 32 bits and the Gigawords count (RFC 2869 §5.1-5.2).
fn octets(attrs: &mut Vec<Attribute>, low: u8, giga: u8, n: u64) {
    attrs.push(Attribute::int(low, (n & 0xffff_ffff) as u32));
    attrs.push(Attribute::int(giga, (n >> 32) as u32));
}

/// The attributes of one record (`now` for the session time of an interim update).
pub fn attributes(nas: &str, event: &Event, now: SystemTime) -> Vec<Attribute> {
    let record = event.record();
    let status = match event {
        Event::Started(_) => value::STATUS_START,
        Event::Interim { .. } => value::STATUS_INTERIM,
        Event::Stopped { .. } => value::STATUS_STOP,
    };
    let mut a = vec![
        Attribute::int(attr::ACCT_STATUS_TYPE, status),
        Attribute::text(attr::USER_NAME, &record.username),
        Attribute::text(attr::NAS_IDENTIFIER, nas),
        Attribute::text(attr::ACCT_SESSION_ID, &session_id(record)),
        Attribute::int(attr::SERVICE_TYPE, value::SERVICE_FRAMED),
        Attribute::int(attr::FRAMED_PROTOCOL, value::FRAMED_PPP),
        Attribute::int(attr::NAS_PORT_TYPE, value::PORT_VIRTUAL),
        Attribute::int(attr::ACCT_AUTHENTIC, value::AUTHENTIC_RADIUS),
    ];
    if let Some(peer) = record.peer() {
        a.push(Attribute::text(attr::CALLING_STATION_ID, &station_id(peer)));
    }
    if let Some(v4) = record.tunnel.vpn_ipv4 {
        a.push(Attribute::ipv4(attr::FRAMED_IP_ADDRESS, v4));
    }
    if let Some(v6) = record.tunnel.vpn_ipv6 {
        a.push(Attribute::ipv6(attr::FRAMED_IPV6_ADDRESS, v6));
    }
    let (rx, tx, secs) = match event {
        Event::Started(_) => return a,
        Event::Interim { rx, tx, .. } => {
            let secs = now
                .duration_since(record.started)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            (*rx, *tx, secs)
        }
        Event::Stopped { end, .. } => {
            a.push(Attribute::int(
                attr::ACCT_TERMINATE_CAUSE,
                terminate_cause(end.cause),
            ));
            (end.rx, end.tx, end.duration_secs)
        }
    };
    // Input is from the client (RFC 2866 §5.3), what main counts as rx.
    octets(
        &mut a,
        attr::ACCT_INPUT_OCTETS,
        attr::ACCT_INPUT_GIGAWORDS,
        rx,
    );
    octets(
        &mut a,
        attr::ACCT_OUTPUT_OCTETS,
        attr::ACCT_OUTPUT_GIGAWORDS,
        tx,
    );
    a.push(Attribute::int(
        attr::ACCT_SESSION_TIME,
        u32::try_from(secs).unwrap_or(u32::MAX),
    ));
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocserv_proto::ipc::main_secmod::{TunnelEnd, TunnelFacts};
    use rocserv_proto::ipc::worker_secmod::ClientFacts;
    use rocserv_proto::ipc::{SessionId, WorkerId};
    use std::net::Ipv4Addr;
    use std::time::Duration;

    fn record() -> Arc<Record> {
        Arc::new(Record {
            sid: SessionId(7),
            worker: WorkerId(3),
            username: "alice".into(),
            group: String::new(),
            vhost: None,
            facts: ClientFacts::default(),
            cert_subject: None,
            tunnel: TunnelFacts {
                peer: Some("192.0.2.9:4443".parse().unwrap()),
                vpn_ipv4: Some(Ipv4Addr::new(10, 1, 0, 5)),
                vpn_ipv6: None,
                device: "vpns0".into(),
            },
            started: SystemTime::UNIX_EPOCH,
            limits: Default::default(),
        })
    }

    fn int(a: &[Attribute], ty: u8) -> Option<u32> {
        a.iter()
            .find(|x| x.ty == ty)
            .and_then(|x| packet::int(&x.value))
    }

    #[test]
    fn stop_carries_octets_gigawords_time_and_cause() {
        let end = TunnelEnd {
            rx: (5u64 << 32) + 10,
            tx: 20,
            duration_secs: 99,
            cause: EndCause::IdleTimeout,
        };
        let a = attributes(
            "nas",
            &Event::Stopped {
                record: record(),
                end,
            },
            SystemTime::now(),
        );
        assert_eq!(int(&a, attr::ACCT_STATUS_TYPE), Some(value::STATUS_STOP));
        assert_eq!(int(&a, attr::ACCT_INPUT_OCTETS), Some(10));
        assert_eq!(int(&a, attr::ACCT_INPUT_GIGAWORDS), Some(5));
        assert_eq!(int(&a, attr::ACCT_OUTPUT_OCTETS), Some(20));
        assert_eq!(int(&a, attr::ACCT_OUTPUT_GIGAWORDS), Some(0));
        assert_eq!(int(&a, attr::ACCT_SESSION_TIME), Some(99));
        assert_eq!(
            int(&a, attr::ACCT_TERMINATE_CAUSE),
            Some(value::CAUSE_IDLE_TIMEOUT)
        );
        assert_eq!(
            a.iter()
                .find(|x| x.ty == attr::FRAMED_IP_ADDRESS)
                .map(|x| x.value.clone()),
            Some(vec![10, 1, 0, 5])
        );
    }

    #[test]
    fn start_and_interim() {
        let a = attributes("nas", &Event::Started(record()), SystemTime::now());
        assert_eq!(int(&a, attr::ACCT_STATUS_TYPE), Some(value::STATUS_START));
        assert_eq!(int(&a, attr::ACCT_INPUT_OCTETS), None);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(42);
        let a = attributes(
            "nas",
            &Event::Interim {
                record: record(),
                rx: 1,
                tx: 2,
            },
            now,
        );
        assert_eq!(int(&a, attr::ACCT_STATUS_TYPE), Some(value::STATUS_INTERIM));
        assert_eq!(int(&a, attr::ACCT_SESSION_TIME), Some(42));
        let sid = a.iter().find(|x| x.ty == attr::ACCT_SESSION_ID).unwrap();
        assert_eq!(sid.value, session_id(&record()).into_bytes());
    }
}
