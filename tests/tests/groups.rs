//! Groups (issue 10 item 2): `select-group` with labels, `default-select-group`,
//! `select-group-by-url`, `auto-select-group`; with the real openconnect (`--authgroup`, a
//! `/GROUP` URL) and with Cisco aggregate-auth XML posted directly. A user gets a group only
//! if the password file puts them in it; the session's group shows in occtl.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use rocserv_e2e::lab::{self, add_user};
use rocserv_e2e::occtl::json;
use rocserv_e2e::{Client, ClientOptions, Lab, Server, WAIT};

/// dave is in staff and admins (staff first), erin in ops only; the lab's alice in none.
fn lab_server(lab: &Lab, extra: &[(&str, &str)]) -> (Server, PathBuf) {
    add_user(&lab.passwd, "dave", "dave-pw", Some("staff,admins"));
    add_user(&lab.passwd, "erin", "erin-pw", Some("ops"));
    let socket = lab.dir.join("occtl.socket");
    let mut options = vec![
        ("use-occtl", "true"),
        ("occtl-socket-file", socket.to_str().unwrap()),
        // Many logins (some refused on purpose) from one address.
        ("max-ban-score", "0"),
        ("select-group", "staff[Staff Network]"),
    ];
    options.extend_from_slice(extra);
    let conf = lab.config(&options);
    // `config` keeps one line per key: add the second select-group by hand.
    let text = std::fs::read_to_string(&conf).unwrap() + "select-group = admins\n";
    std::fs::write(&conf, text).unwrap();
    (Server::start(&lab.srv, &conf), socket)
}

/// The group occtl shows for the one connected user `user`.
fn groupname(socket: &std::path::Path, user: &str) -> String {
    let users = json(socket, &["show", "user", user]);
    users[0]["Groupname"]
        .as_str()
        .unwrap_or_else(|| panic!("no Groupname: {users}"))
        .to_owned()
}

fn connect(lab: &Lab, user: &str, password: &str, extra: &[&str], url: Option<String>) -> Client {
    let mut opts = ClientOptions::password(user, password);
    opts.extra = extra.iter().map(|s| (*s).to_owned()).collect();
    opts.url = url;
    Client::start(lab, &opts)
}

fn refused(lab: &Lab, server: &Server, user: &str, extra: &[&str], url: Option<String>) {
    let skip = server.log_len();
    let mut client = connect(lab, user, &format!("{user}-pw"), extra, url);
    let status = client.wait_exit(WAIT).expect("openconnect gave up");
    assert!(!status.success(), "{user} got in:\n{}", client.output());
    server
        .wait_for_log_after(
            skip,
            &format!("login failed for user '{user}' via plain: not a member of group"),
            WAIT,
        )
        .unwrap();
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn authgroup_gives_a_member_the_group_and_refuses_others() {
    let lab = Lab::new();
    let (server, socket) = lab_server(&lab, &[("default-select-group", "DEFAULT")]);

    // openconnect matches --authgroup against the labels.
    let mut client = connect(
        &lab,
        "dave",
        "dave-pw",
        &["--authgroup=Staff Network"],
        None,
    );
    client.wait_up(WAIT).expect("dave in staff");
    assert_eq!(groupname(&socket, "dave"), "staff");
    drop(client);

    let mut client = connect(&lab, "dave", "dave-pw", &["--authgroup=admins"], None);
    client.wait_up(WAIT).expect("dave in admins");
    assert_eq!(groupname(&socket, "dave"), "admins");
    drop(client);

    // default-select-group: the user's default group, the first of the password file.
    let mut client = connect(&lab, "dave", "dave-pw", &["--authgroup=DEFAULT"], None);
    client.wait_up(WAIT).expect("dave with the default group");
    assert_eq!(groupname(&socket, "dave"), "staff");
    drop(client);

    // Not a member: refused, and the log names user and group.
    refused(&lab, &server, "erin", &["--authgroup=admins"], None);
    refused(&lab, &server, "alice", &["--authgroup=Staff Network"], None);
    let log = server.log_text();
    assert!(
        log.contains("login failed for user 'erin' via plain: not a member of group \"admins\""),
        "{log}"
    );
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn the_url_path_chooses_the_group_with_select_group_by_url() {
    let lab = Lab::new();
    let (server, socket) = lab_server(&lab, &[("select-group-by-url", "true")]);
    let url = |group: &str| Some(format!("https://{}/{group}", lab::SERVER_IP));

    let mut client = connect(&lab, "dave", "dave-pw", &[], url("admins"));
    client.wait_up(WAIT).expect("dave via /admins");
    assert_eq!(groupname(&socket, "dave"), "admins");
    drop(client);

    // The form offers only the URL's group; openconnect shows its label and takes it.
    let mut client = connect(&lab, "dave", "dave-pw", &[], url("staff"));
    client.wait_up(WAIT).expect("dave via /staff");
    assert_eq!(groupname(&socket, "dave"), "staff");
    assert!(
        client.output().contains("Group: [Staff Network]"),
        "{}",
        client.output()
    );
    drop(client);

    refused(&lab, &server, "erin", &[], url("staff"));
    // The URL wins over --authgroup, as in ocserv.
    refused(&lab, &server, "erin", &["--authgroup=ops"], url("admins"));
}

/// POST `body` to `path` with curl from the client namespace; (status line + headers, body).
fn post(lab: &Lab, path: &str, body: &str) -> (String, String) {
    use std::io::Write;
    let mut child = lab
        .cli
        .command("curl")
        .args(["-sk", "-i", "--max-time", "10", "-H"])
        .arg("X-Aggregate-Auth: 1")
        .args(["-A", "AnyConnect Windows 4.10.07061", "--data-binary", "@-"])
        .arg(format!("https://{}{path}", lab::SERVER_IP))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn curl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_owned(), body.to_owned())
}

fn aggregate(kind: &str, inner: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" type=\"{kind}\" \
         aggregate-auth-version=\"2\"><version who=\"vpn\">4.10.07061</version>\
         <device-id>win</device-id>{inner}</config-auth>"
    )
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn cisco_aggregate_auth_carries_the_group_choice() {
    let lab = Lab::new();
    let (server, _socket) = lab_server(
        &lab,
        &[
            ("select-group-by-url", "true"),
            ("default-select-group", "DEFAULT"),
        ],
    );

    // init: the form offers the groups with their labels, default-select-group first.
    let (head, body) = post(
        &lab,
        "/",
        &aggregate(
            "init",
            &format!("<group-access>https://{}/</group-access>", lab::SERVER_IP),
        ),
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        body.contains(
            "<select name=\"group_list\" label=\"Group:\">\n\
             <option value=\"DEFAULT\">DEFAULT</option>\n\
             <option value=\"staff\">Staff Network</option>\n\
             <option value=\"admins\">admins</option>\n</select>"
        ),
        "{body}"
    );

    // auth-reply with <group-select> (the value, or the label as some clients send it).
    for (choice, want) in [("admins", "admins"), ("Staff Network", "staff")] {
        let skip = server.log_len();
        let (head, body) = post(
            &lab,
            "/",
            &aggregate(
                "auth-reply",
                &format!(
                    "<group-select>{choice}</group-select><auth><username>dave</username>\
                     <password>dave-pw</password></auth>"
                ),
            ),
        );
        assert!(head.contains("Set-Cookie: webvpn="), "{head}\n{body}");
        assert!(body.contains("type=\"complete\""), "{body}");
        server
            .wait_for_log_after(
                skip,
                &format!("user 'dave' logged in via plain (group '{want}'"),
                WAIT,
            )
            .unwrap();
    }

    // The <group-access> URL's path names the group (select-group-by-url).
    let skip = server.log_len();
    let (head, _) = post(
        &lab,
        "/",
        &aggregate(
            "auth-reply",
            &format!(
                "<group-access>https://{}/admins</group-access><auth><username>dave</username>\
                 <password>dave-pw</password></auth>",
                lab::SERVER_IP
            ),
        ),
    );
    assert!(head.contains("Set-Cookie: webvpn="), "{head}");
    server
        .wait_for_log_after(
            skip,
            "user 'dave' logged in via plain (group 'admins'",
            WAIT,
        )
        .unwrap();

    // A group the user is not in: no cookie, the form again with "Login failed.".
    for (who, choice) in [("erin", "staff"), ("alice", "admins"), ("dave", "ops")] {
        let skip = server.log_len();
        let (head, body) = post(
            &lab,
            "/",
            &aggregate(
                "auth-reply",
                &format!(
                    "<group-select>{choice}</group-select><auth><username>{who}</username>\
                     <password>{who}-pw</password></auth>"
                ),
            ),
        );
        assert!(!head.contains("webvpn="), "{who} got a cookie: {head}");
        assert!(body.contains("Login failed."), "{body}");
        server
            .wait_for_log_after(
                skip,
                &format!(
                    "login failed for user '{who}' via plain: not a member of group \"{choice}\""
                ),
                WAIT,
            )
            .unwrap();
    }
    // A hostile name never reaches a backend.
    let skip = server.log_len();
    let (_, body) = post(
        &lab,
        "/",
        &aggregate(
            "auth-reply",
            "<group-select>../staff</group-select><auth><username>dave</username>\
             <password>dave-pw</password></auth>",
        ),
    );
    assert!(body.contains("Login failed."), "{body}");
    server
        .wait_for_log_after(skip, "malformed group name", Duration::from_secs(10))
        .unwrap();
}

/// `auto-select-group` with the password file: the form offers every group the file names
/// (sorted, once each) instead of the `select-group` lines, keeping a line's label.
#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn auto_select_group_offers_the_password_files_groups() {
    let lab = Lab::new();
    let (server, socket) = lab_server(&lab, &[("auto-select-group", "true")]);
    let (_, body) = post(&lab, "/", &aggregate("init", ""));
    assert!(
        body.contains(
            "<select name=\"group_list\" label=\"Group:\">\n\
             <option value=\"admins\">admins</option>\n\
             <option value=\"ops\">ops</option>\n\
             <option value=\"staff\">Staff Network</option>\n</select>"
        ),
        "{body}"
    );
    let mut client = connect(&lab, "erin", "erin-pw", &["--authgroup=ops"], None);
    client.wait_up(WAIT).expect("erin in ops");
    assert_eq!(groupname(&socket, "erin"), "ops");
    drop(client);
    refused(&lab, &server, "erin", &["--authgroup=Staff Network"], None);
}

/// The chosen group is the session's group, so its `config-per-group` file applies: dave gets
/// the admins file's route and DNS with `--authgroup=admins`, and the staff file's with staff.
#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn the_chosen_groups_file_applies() {
    let lab = Lab::new();
    let groups_dir = lab.dir.join("config-per-group");
    std::fs::create_dir_all(&groups_dir).unwrap();
    std::fs::write(
        groups_dir.join("admins"),
        "route = 10.77.0.0/16\ndns = 10.77.0.53\n",
    )
    .unwrap();
    std::fs::write(
        groups_dir.join("staff"),
        "route = 10.66.0.0/16\ndns = 10.66.0.53\n",
    )
    .unwrap();
    let (_server, socket) = lab_server(&lab, &[("config-per-group", groups_dir.to_str().unwrap())]);
    for (choice, group, dns, route) in [
        ("admins", "admins", "10.77.0.53", "10.77.0.0/255.255.0.0"),
        (
            "Staff Network",
            "staff",
            "10.66.0.53",
            "10.66.0.0/255.255.0.0",
        ),
    ] {
        let authgroup = format!("--authgroup={choice}");
        let mut client = connect(&lab, "dave", "dave-pw", &[&authgroup], None);
        client.wait_up(WAIT).expect("dave logs in");
        let users = json(&socket, &["show", "user", "dave"]);
        let user = &users[0];
        assert_eq!(user["Groupname"], group, "{user}");
        assert_eq!(user["DNS"], serde_json::json!([dns]), "{user}");
        let routes = user["Routes"].to_string();
        assert!(routes.contains(route), "{user}");
        drop(client);
    }
}
