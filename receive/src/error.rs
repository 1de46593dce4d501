//! What can go wrong receiving.

/// The receiver or follower could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The listen address could not be bound.
    #[error("binding the receiver to {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The settings cannot work.
    #[error("receiver settings: {0}")]
    Settings(String),
    /// The server's runtime or thread failed.
    #[error("receiver runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The server stopped with an error.
    #[error("receiver stopped: {0}")]
    Server(String),
    /// The downstream refused what was read.
    #[error(transparent)]
    Downstream(#[from] DownstreamError),
}

/// The downstream did not take a request's events.
#[derive(Debug, thiserror::Error)]
pub enum DownstreamError {
    /// The bus did not acknowledge every record.
    #[error(transparent)]
    Bus(#[from] trailhound_bus::BusError),
    /// Another downstream's reason.
    #[error("{0}")]
    Other(String),
}
