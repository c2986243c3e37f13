//! The command line, shaped like ocserv's (`ocserv -c FILE -f -d N -t -p PIDFILE`).

use std::path::PathBuf;

use clap::Parser;

/// Default configuration file, as ocserv's.
pub const DEFAULT_CONFIG: &str = "/etc/ocserv/ocserv.conf";

/// OpenConnect VPN server (ocserv-compatible).
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(name = "rocserv", version, disable_version_flag = true)]
pub struct Cli {
    /// Configuration file.
    #[arg(short = 'c', long = "config", value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,

    /// Stay in the foreground. rocserv always does (sec-mod logs to stderr only); the
    /// flag is accepted for ocserv compatibility and silences the notice.
    #[arg(short = 'f', long = "foreground")]
    pub foreground: bool,

    /// Debug level 0..=9 (ocserv scale; 1 = normal), overrides `log-level`.
    #[arg(short = 'd', long = "debug", value_name = "N",
          value_parser = clap::value_parser!(u8).range(0..=9))]
    pub debug: Option<u8>,

    /// Check the configuration (certificate, key, password file, users) and exit.
    #[arg(short = 't', long = "test-config")]
    pub test_config: bool,

    /// PID file, overrides `pid-file`.
    #[arg(short = 'p', long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,

    /// Log to stderr instead of syslog.
    #[arg(long = "log-stderr")]
    pub log_stderr: bool,

    /// The syslog socket (ours; default /dev/log), e.g. for a chroot or container whose
    /// syslog daemon listens elsewhere.
    #[arg(long = "syslog-socket", value_name = "PATH", default_value = crate::logger::SYSLOG_SOCKET)]
    pub syslog_socket: PathBuf,

    /// Start a demo server without a configuration file: self-signed certificate and a user
    /// `demo` with a random password, in /var/lib/rocserv-demo.
    #[arg(long = "demo", conflicts_with = "config")]
    pub demo: bool,

    /// Print the version and exit.
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version)]
    pub version: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("rocserv").chain(args.iter().copied()))
    }

    #[test]
    fn defaults() {
        let cli = parse(&[]).unwrap();
        assert_eq!(cli.config, PathBuf::from(DEFAULT_CONFIG));
        assert!(!cli.foreground && !cli.test_config && !cli.demo);
        assert_eq!(cli.debug, None);
        assert_eq!(cli.pid_file, None);
        assert_eq!(cli.syslog_socket, PathBuf::from("/dev/log"));
    }

    #[test]
    fn ocserv_style_flags() {
        let cli = parse(&[
            "-f",
            "-c",
            "/tmp/x.conf",
            "-d",
            "3",
            "-p",
            "/run/r.pid",
            "-t",
        ])
        .unwrap();
        assert_eq!(cli.config, PathBuf::from("/tmp/x.conf"));
        assert!(cli.foreground && cli.test_config);
        assert_eq!(cli.debug, Some(3));
        assert_eq!(cli.pid_file, Some(PathBuf::from("/run/r.pid")));
        let cli = parse(&["--log-stderr", "--foreground", "--config=/a"]).unwrap();
        assert!(cli.log_stderr && cli.foreground);
        assert_eq!(cli.config, PathBuf::from("/a"));
    }

    #[test]
    fn debug_level_is_bounded() {
        assert!(parse(&["-d", "10"]).is_err());
        assert!(parse(&["-d", "x"]).is_err());
        assert_eq!(parse(&["-d", "0"]).unwrap().debug, Some(0));
    }

    #[test]
    fn version_flag_exits_early() {
        for flag in ["-v", "--version"] {
            let err = parse(&[flag]).unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::DisplayVersion);
            // Tools parse the first line as ocserv's (`ocserv 1.1.6`): NAME, one space,
            // a dotted version.
            let text = err.to_string();
            let first = text.lines().next().unwrap();
            assert_eq!(first, format!("rocserv {}", env!("CARGO_PKG_VERSION")));
            assert!(
                first[8..].split('.').all(|n| n.parse::<u32>().is_ok()),
                "{first}"
            );
        }
    }

    #[test]
    fn demo_conflicts_with_explicit_config() {
        assert!(parse(&["--demo"]).unwrap().demo);
        assert!(parse(&["--demo", "-c", "/x"]).is_err());
    }

    #[test]
    fn unknown_flag_is_rejected() {
        assert!(parse(&["--bogus"]).is_err());
    }
}
