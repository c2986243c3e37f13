//! The link to the store: one multiplexed connection (redis-rs `ConnectionManager`, which
//! reconnects by itself) for commands, every command bounded by [`COMMAND_TIMEOUT`], and the
//! store's state (up/down), logged once per change.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, IntoConnectionInfo as _};
use rocserv_proto::cluster::StoreUrl;
use rocserv_proto::ipc::cluster::ClusterSettings;

/// Longest a store command may take before it counts as failed (and the store as down). A
/// login waits at most this long per store round trip: the store must never stall a login
/// beyond what a slow RADIUS server would.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

/// A store command that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No answer within [`COMMAND_TIMEOUT`], or no connection: the node works alone.
    #[error("the cluster store is unreachable: {0}")]
    Down(String),
    /// The store answered with an error (wrong type, script error, ACL...).
    #[error("the cluster store refused {what}: {why}")]
    Refused { what: &'static str, why: String },
}

/// The command link.
pub struct Store {
    url: StoreUrl,
    client: redis::Client,
    conn: ConnectionManager,
    /// Up or down (`None` until the first command): sec-mod's loop tells main and
    /// resynchronises on a change.
    up: tokio::sync::watch::Sender<Option<bool>>,
}

impl Store {
    /// Build the client (no connection yet: it is made on the first command). Reads the
    /// credentials and CA files; their problems are start-up errors.
    pub fn new(settings: &ClusterSettings) -> Result<Self, String> {
        let url = &settings.store;
        let scheme = if url.tls { "rediss" } else { "redis" };
        let host = if url.host.contains(':') {
            format!("[{}]", url.host)
        } else {
            url.host.clone()
        };
        let text = format!("{scheme}://{host}:{}/{}", url.port, url.db);
        let mut info = text
            .as_str()
            .into_connection_info()
            .map_err(|e| format!("cluster-store {url}: {e}"))?;
        if let Some(path) = &settings.auth_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cluster-store-auth-file {}: {e}", path.display()))?;
            let (user, password) = rocserv_proto::cluster::parse_auth_line(&text)
                .ok_or_else(|| format!("cluster-store-auth-file {}: empty", path.display()))?;
            let mut redis = info.redis_settings().clone().set_password(password);
            if let Some(user) = user {
                redis = redis.set_username(user);
            }
            info = info.set_redis_settings(redis);
        }
        let client = match &settings.ca_cert {
            Some(path) if url.tls => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("cluster-store-ca-cert {}: {e}", path.display()))?;
                redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem),
                    },
                )
            }
            _ => redis::Client::open(info),
        }
        .map_err(|e| format!("cluster-store {url}: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| format!("cluster-store {url}: {e}"))?;
        Ok(Self {
            url: url.clone(),
            client,
            conn,
            up: tokio::sync::watch::Sender::new(None),
        })
    }

    /// The store's address, for log lines (no credentials: the URL never holds any).
    pub fn url(&self) -> &StoreUrl {
        &self.url
    }

    /// The client, for the pub/sub connection ([`super::subscribe`]).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// Whether the last command reached the store.
    pub fn is_up(&self) -> bool {
        *self.up.borrow() == Some(true)
    }

    /// Follow the store's state (see [`Self::set_up`]).
    pub fn watch(&self) -> tokio::sync::watch::Receiver<Option<bool>> {
        self.up.subscribe()
    }

    /// Run one command, bounded by [`COMMAND_TIMEOUT`]. `what` names it in errors and logs.
    pub async fn cmd<T: FromRedisValue>(
        &self,
        what: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        let answer = tokio::time::timeout(COMMAND_TIMEOUT, cmd.query_async::<T>(&mut conn)).await;
        self.judge(what, answer)
    }

    /// Run a pipeline (`MULTI`/`EXEC` when it is atomic), bounded like [`Self::cmd`].
    pub async fn pipe<T: FromRedisValue>(
        &self,
        what: &'static str,
        pipe: &redis::Pipeline,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        let answer = tokio::time::timeout(COMMAND_TIMEOUT, pipe.query_async::<T>(&mut conn)).await;
        self.judge(what, answer)
    }

    /// Run a Lua script (atomic on the store), bounded like [`Self::cmd`].
    pub async fn script<T: FromRedisValue>(
        &self,
        what: &'static str,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        let answer =
            tokio::time::timeout(COMMAND_TIMEOUT, invocation.invoke_async::<T>(&mut conn)).await;
        self.judge(what, answer)
    }

    fn judge<T>(
        &self,
        what: &'static str,
        answer: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, StoreError> {
        match answer {
            Ok(Ok(value)) => {
                self.set_up(true, None);
                Ok(value)
            }
            Ok(Err(e)) if is_connection_error(&e) => {
                let why = e.to_string();
                self.set_up(false, Some(&why));
                Err(StoreError::Down(why))
            }
            Ok(Err(e)) => Err(StoreError::Refused {
                what,
                why: e.to_string(),
            }),
            Err(_elapsed) => {
                let why = format!("{what}: no answer within {COMMAND_TIMEOUT:?}");
                self.set_up(false, Some(&why));
                Err(StoreError::Down(why))
            }
        }
    }

    /// Record the store's state; returns whether it changed. A change is logged here, once.
    pub fn set_up(&self, up: bool, why: Option<&str>) -> bool {
        if !self
            .up
            .send_if_modified(|state| state.replace(up) != Some(up))
        {
            return false;
        }
        if up {
            log::info!(
                "cluster store {} reachable: sessions, bans and leases are shared",
                self.url
            );
        } else {
            log::error!(
                "cluster store {} unreachable ({}): this node keeps its tunnels and works alone \
                 (new logins are local to it) until the store is back",
                self.url,
                why.unwrap_or("no answer")
            );
        }
        true
    }
}

/// Whether `e` means "no usable connection" (as opposed to the store refusing a command).
fn is_connection_error(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
}
