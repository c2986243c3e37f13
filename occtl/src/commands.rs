//! The command table (ocserv src/occtl/occtl.c names, arguments and help texts in our words),
//! parsing of a command line into a [`Command`], and running it against the server.

use std::io::Write;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use rocserv_proto::ipc::ctl::{CtlRequest, CtlResponse, SessionFilter, Target, UserFilter};

use crate::client::{ClientError, Conn};
use crate::output::{json_array, Record};
use crate::render;

/// Exit statuses, as ocserv's occtl: 0 done, 1 error (including an unreachable server and
/// unknown commands), 2 the user, ID or session to show does not exist.
pub(crate) const EXIT_OK: u8 = 0;
pub(crate) const EXIT_ERROR: u8 = 1;
pub(crate) const EXIT_NOT_FOUND: u8 = 2;

/// ocserv's wording when the socket cannot be used.
const UNREACHABLE: &str =
    "could not send message; possibly insufficient permissions or server is offline.";

/// One row of the command table.
pub(crate) struct Spec {
    pub(crate) name: &'static str,
    pub(crate) arg: Option<&'static str>,
    pub(crate) help: &'static str,
    /// Listed by `help` (hidden aliases are not).
    pub(crate) shown: bool,
}

const fn spec(name: &'static str, arg: Option<&'static str>, help: &'static str) -> Spec {
    Spec {
        name,
        arg,
        help,
        shown: true,
    }
}

pub(crate) const COMMANDS: &[Spec] = &[
    spec(
        "disconnect user",
        Some("[NAME]"),
        "Disconnect the named user",
    ),
    spec(
        "disconnect id",
        Some("[ID]"),
        "Disconnect the connection with this ID",
    ),
    spec(
        "terminate user",
        Some("[NAME]"),
        "Disconnect the user and invalidate its sessions",
    ),
    spec(
        "terminate id",
        Some("[ID]"),
        "Disconnect the ID and invalidate its session",
    ),
    spec(
        "terminate session",
        Some("[SID]"),
        "Invalidate the session (SID or a unique prefix)",
    ),
    spec("unban ip", Some("[IP]"), "Unban the address"),
    spec("reload", None, "Reload the server configuration"),
    spec(
        "show status",
        None,
        "Print the server's status and statistics",
    ),
    spec("show users", None, "Print the connected users"),
    spec("show ip bans", None, "Print the banned addresses"),
    spec(
        "show ip ban points",
        None,
        "Print every address that has ban points",
    ),
    spec("show iroutes", None, "Print the routes users provide"),
    spec("show sessions all", None, "Print every session"),
    spec(
        "show sessions valid",
        None,
        "Print the sessions a client may reconnect with",
    ),
    spec("show session", Some("[SID]"), "Print the session"),
    spec(
        "show user",
        Some("[NAME]"),
        "Print the named user's connections",
    ),
    spec("show id", Some("[ID]"), "Print the connection with this ID"),
    spec(
        "show events",
        None,
        "Print users as they connect and disconnect",
    ),
    spec(
        "show history",
        Some("[NAME]"),
        "Print the last 100 sessions (of NAME) from the session database",
    ),
    spec("stop", Some("now"), "Stop the server"),
    spec("help", Some("or ?"), "Print this help"),
    spec("exit", None, "Leave this shell"),
    Spec {
        name: "?",
        arg: None,
        help: "Print this help",
        shown: false,
    },
    Spec {
        name: "quit",
        arg: None,
        help: "Leave this shell",
        shown: false,
    },
    Spec {
        name: "show cookies all",
        arg: None,
        help: "Alias of show sessions all",
        shown: false,
    },
    Spec {
        name: "show cookies valid",
        arg: None,
        help: "Alias of show sessions valid",
        shown: false,
    },
];

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Status,
    Users,
    User(String),
    Id(u64),
    Iroutes,
    Sessions(SessionFilter),
    Bans {
        points: bool,
    },
    Events,
    /// `show history [NAME]`.
    History(Option<String>),
    Disconnect(UserFilter),
    Terminate(Target),
    Unban(IpAddr),
    Reload,
    Stop,
    Help,
    Exit,
}

/// Parse `line` (words are matched case-insensitively, extra blanks ignored).
pub(crate) fn parse(line: &str) -> Result<Command, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let best = COMMANDS
        .iter()
        .filter(|c| {
            let name: Vec<&str> = c.name.split(' ').collect();
            words.len() >= name.len()
                && name
                    .iter()
                    .zip(&words)
                    .all(|(a, b)| a.eq_ignore_ascii_case(b))
        })
        .max_by_key(|c| c.name.split(' ').count())
        .ok_or_else(|| format!("unknown command: {}", line.trim()))?;
    let args: Vec<&str> = words
        .get(best.name.split(' ').count()..)
        .unwrap_or_default()
        .to_vec();
    let arg = || -> Result<String, String> {
        match args.as_slice() {
            [one] => Ok((*one).to_owned()),
            _ => Err(format!(
                "usage: {} {}",
                best.name,
                best.arg.unwrap_or_default()
            )),
        }
    };
    let id = || -> Result<u64, String> {
        arg()?
            .parse()
            .map_err(|_| format!("'{}' is not a connection ID", args.join(" ")))
    };
    let none = |cmd: Command| -> Result<Command, String> {
        if args.is_empty() {
            Ok(cmd)
        } else {
            Err(format!("{} takes no argument", best.name))
        }
    };
    match best.name {
        "disconnect user" => Ok(Command::Disconnect(UserFilter::Name(arg()?))),
        "disconnect id" => Ok(Command::Disconnect(UserFilter::Id(id()?))),
        "terminate user" => Ok(Command::Terminate(Target::User(arg()?))),
        "terminate id" => Ok(Command::Terminate(Target::Id(id()?))),
        "terminate session" => Ok(Command::Terminate(Target::Session(arg()?))),
        "unban ip" => {
            let text = arg()?;
            text.parse()
                .map(Command::Unban)
                .map_err(|_| format!("'{text}' is not an IP address"))
        }
        "reload" => none(Command::Reload),
        "show status" => none(Command::Status),
        "show users" => none(Command::Users),
        "show ip bans" => none(Command::Bans { points: false }),
        "show ip ban points" => none(Command::Bans { points: true }),
        "show iroutes" => none(Command::Iroutes),
        "show sessions all" | "show cookies all" => none(Command::Sessions(SessionFilter::All)),
        "show sessions valid" | "show cookies valid" => {
            none(Command::Sessions(SessionFilter::Valid))
        }
        "show session" => Ok(Command::Sessions(SessionFilter::Prefix(arg()?))),
        "show user" => Ok(Command::User(arg()?)),
        "show id" => Ok(Command::Id(id()?)),
        "show events" => none(Command::Events),
        "show history" => match args.as_slice() {
            [] => Ok(Command::History(None)),
            [name] => Ok(Command::History(Some((*name).to_owned()))),
            _ => Err("usage: show history [NAME]".to_owned()),
        },
        "stop" => match args.as_slice() {
            ["now"] => Ok(Command::Stop),
            _ => Err("usage: stop now".to_owned()),
        },
        "help" | "?" => Ok(Command::Help),
        _ => Ok(Command::Exit),
    }
}

/// Sessions `show history` prints at most (newest first).
pub(crate) const HISTORY_LIMIT: u32 = 100;

/// Output switches.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Options {
    pub(crate) json: bool,
    pub(crate) debug: bool,
}

/// The help text (`interactive` also lists the shell's own commands).
pub(crate) fn help(interactive: bool) -> String {
    let mut out = String::from("Available Commands\n");
    for c in COMMANDS.iter().filter(|c| c.shown) {
        if !interactive && c.name == "exit" {
            continue;
        }
        let name = match c.arg {
            Some(arg) => format!("{} {arg}", c.name),
            None => c.name.to_owned(),
        };
        out.push_str(&format!(" {name:<24} {}\n", c.help));
    }
    out
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Run one server command and print its result; returns the exit status.
pub(crate) fn run(conn: &mut Conn, cmd: &Command, opts: Options, out: &mut dyn Write) -> u8 {
    match execute(conn, cmd, opts, out) {
        Ok(code) => code,
        Err(ClientError::Refused(why)) => {
            eprintln!("{why}");
            EXIT_ERROR
        }
        Err(e) => {
            eprintln!("{UNREACHABLE} ({})", error_chain(&e));
            if matches!(cmd, Command::Status) {
                let mut r = Record::default();
                r.str("Status", "offline");
                let _ = write!(out, "{}", status_text(&r, opts.json));
            }
            EXIT_ERROR
        }
    }
}

fn execute(
    conn: &mut Conn,
    cmd: &Command,
    opts: Options,
    out: &mut dyn Write,
) -> Result<u8, ClientError> {
    let now = now();
    let text = match cmd {
        Command::Status => {
            let status = conn.status()?;
            status_text(&render::status(&status, now, opts.debug), opts.json)
        }
        Command::Users => {
            let users = conn.users(CtlRequest::Users(UserFilter::All))?;
            if opts.json {
                let records: Vec<Record> = users.iter().map(|u| render::user(u, now)).collect();
                json_array(&records, true)
            } else {
                render::users_table(&users, now)
            }
        }
        Command::User(_) | Command::Id(_) => {
            let filter = match cmd {
                Command::User(name) => UserFilter::Name(name.clone()),
                Command::Id(id) => UserFilter::Id(*id),
                _ => UserFilter::All,
            };
            let users = conn.users(CtlRequest::Users(filter))?;
            let records: Vec<Record> = users.iter().map(|u| render::user(u, now)).collect();
            let text = blocks(&records, opts.json);
            if users.is_empty() {
                if !opts.json {
                    eprintln!("user or ID not found");
                }
                let _ = write!(out, "{text}");
                return Ok(EXIT_NOT_FOUND);
            }
            text
        }
        Command::Iroutes => {
            let users = conn.users(CtlRequest::Users(UserFilter::All))?;
            if opts.json {
                let records: Vec<Record> = users.iter().map(render::iroute).collect();
                json_array(&records, false)
            } else {
                iroutes_table(&users)
            }
        }
        Command::Sessions(filter) => {
            let sessions = conn.sessions(CtlRequest::Sessions(filter.clone()))?;
            let records: Vec<Record> = sessions
                .iter()
                .map(|s| render::session(s, opts.json))
                .collect();
            if let SessionFilter::Prefix(_) = filter {
                let text = blocks(&records, opts.json);
                if sessions.is_empty() {
                    if !opts.json {
                        eprintln!("Session ID not found or expired");
                    }
                    let _ = write!(out, "{text}");
                    return Ok(EXIT_NOT_FOUND);
                }
                text
            } else if opts.json {
                json_array(&records, true)
            } else {
                render::sessions_table(&sessions, now)
            }
        }
        Command::Bans { points } => {
            let bans = conn.bans(CtlRequest::Bans { points: *points })?;
            if opts.json {
                let records: Vec<Record> = bans
                    .iter()
                    .filter_map(|b| render::ban(b, *points, now))
                    .collect();
                json_array(&records, false)
            } else {
                render::bans_table(&bans, *points, now)
            }
        }
        Command::Events => return events(conn, opts, out),
        Command::History(user) => {
            let records = conn.history(CtlRequest::History {
                user: user.clone(),
                limit: HISTORY_LIMIT,
            })?;
            if opts.json {
                let records: Vec<Record> = records.iter().map(render::history).collect();
                json_array(&records, true)
            } else {
                render::history_table(&records)
            }
        }
        Command::Disconnect(filter) => {
            let done = conn.action(CtlRequest::Disconnect(filter.clone()))?;
            let (code, text) = match (filter, done) {
                (UserFilter::Name(n), true) => (EXIT_OK, format!("user '{n}' was disconnected")),
                (UserFilter::Name(n), false) => {
                    (EXIT_ERROR, format!("could not disconnect user '{n}'"))
                }
                (UserFilter::Id(id), true) => {
                    (EXIT_OK, format!("connection ID '{id}' was disconnected"))
                }
                (UserFilter::Id(id), false) => {
                    (EXIT_ERROR, format!("could not disconnect ID '{id}'"))
                }
                (UserFilter::All, _) => (EXIT_ERROR, "nothing to disconnect".to_owned()),
            };
            let _ = writeln!(out, "{text}");
            return Ok(code);
        }
        Command::Terminate(target) => {
            let done = conn.action(CtlRequest::Terminate(target.clone()))?;
            let what = match target {
                Target::User(n) => format!("user '{n}'"),
                Target::Id(id) => format!("connection ID '{id}'"),
                Target::Session(s) => format!("session '{s}'"),
            };
            if done {
                let _ = writeln!(out, "{what} was terminated");
                return Ok(EXIT_OK);
            }
            let _ = writeln!(out, "could not terminate {what}");
            return Ok(if matches!(target, Target::Session(_)) {
                EXIT_NOT_FOUND
            } else {
                EXIT_ERROR
            });
        }
        Command::Unban(ip) => {
            let done = conn.action(CtlRequest::Unban(*ip))?;
            let text = if done {
                format!("IP '{ip}' was unbanned")
            } else {
                format!("could not unban IP '{ip}'")
            };
            let _ = writeln!(out, "{text}");
            return Ok(if done { EXIT_OK } else { EXIT_ERROR });
        }
        Command::Reload => match conn.action(CtlRequest::Reload) {
            Ok(true) => "Server scheduled to reload\n".to_owned(),
            Ok(false) | Err(ClientError::Refused(_)) => {
                let _ = writeln!(out, "Error scheduling reload");
                return Ok(EXIT_ERROR);
            }
            Err(e) => return Err(e),
        },
        Command::Stop => {
            conn.action(CtlRequest::Stop)?;
            "Server scheduled to stop\n".to_owned()
        }
        Command::Help => help(false),
        Command::Exit => String::new(),
    };
    let _ = write!(out, "{text}");
    Ok(EXIT_OK)
}

/// Records as a JSON array, or as text blocks separated by blank lines.
fn blocks(records: &[Record], json: bool) -> String {
    if json {
        return json_array(records, true);
    }
    let texts: Vec<String> = records.iter().map(Record::text).collect();
    texts.join("\n")
}

fn status_text(record: &Record, json: bool) -> String {
    if json {
        format!("{}\n", record.json())
    } else {
        record.text()
    }
}

fn iroutes_table(users: &[rocserv_proto::ipc::ctl::UserInfo]) -> String {
    let mut out = String::new();
    for (i, u) in users.iter().enumerate() {
        if i == 0 {
            out.push_str(&format!(
                "{:>6} {:>8} {:>8} {:>6} {:>16} {:>28}\n",
                "id", "user", "vhost", "device", "vpn-ip", "iroute"
            ));
        }
        let ip = render::vpn_ip(u);
        for route in &u.iroutes {
            out.push_str(&format!(
                "{:>6} {:>8} {:>8} {:>6} {:>16} {:>28}\n",
                u.id, u.username, "default", u.device, ip, route
            ));
        }
    }
    out
}

/// `show events`: one user array (JSON) or one line (text) per event, until the server goes.
fn events(conn: &mut Conn, opts: Options, out: &mut dyn Write) -> Result<u8, ClientError> {
    conn.send(&CtlRequest::Events)?;
    conn.no_timeout()?;
    loop {
        let event = match conn.recv() {
            Ok(e) => e,
            Err(ClientError::Closed) => return Ok(EXIT_OK),
            Err(e) => return Err(e),
        };
        let CtlResponse::Event { connected, user } = event else {
            return Err(ClientError::Unexpected);
        };
        let text = if opts.json {
            json_array(&[render::user(&user, now())], true)
        } else {
            render::event_line(connected, &user)
        };
        let written = write!(out, "{text}").and_then(|()| out.flush());
        if written.is_err() {
            // stdout closed (e.g. `occtl show events | head`): done.
            return Ok(EXIT_OK);
        }
    }
}

pub(crate) use rocserv_proto::error_chain;
