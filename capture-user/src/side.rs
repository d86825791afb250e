//! Which half of a connection bytes belong to, and who the client is.
//!
//! Every layer of the decoder speaks of the two halves of a connection by
//! [`Side`]: the initiator's bytes and the responder's. Whether the initiator
//! is the client is a separate fact ([`Role`]) that may be learned late (a
//! connection picked up mid-way learns it from an HTTP head or from masked
//! frames), so it is kept beside the sides, never folded into them.

use std::ops::{Index, IndexMut};

use crate::event::Direction;

/// One half of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Bytes sent by the connection's initiator (the SYN sender when seen,
    /// otherwise the sender of the first segment seen).
    Initiator,
    /// Bytes sent by the other end.
    Responder,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Initiator => Side::Responder,
            Side::Responder => Side::Initiator,
        }
    }
}

/// One value per side, indexed by [`Side`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PerSide<T> {
    pub initiator: T,
    pub responder: T,
}

impl<T> PerSide<T> {
    pub fn new(initiator: T, responder: T) -> Self {
        PerSide {
            initiator,
            responder,
        }
    }

    /// Both values, initiator first.
    pub fn both(&self) -> [&T; 2] {
        [&self.initiator, &self.responder]
    }
}

impl<T> Index<Side> for PerSide<T> {
    type Output = T;
    fn index(&self, side: Side) -> &T {
        match side {
            Side::Initiator => &self.initiator,
            Side::Responder => &self.responder,
        }
    }
}

impl<T> IndexMut<Side> for PerSide<T> {
    fn index_mut(&mut self, side: Side) -> &mut T {
        match side {
            Side::Initiator => &mut self.initiator,
            Side::Responder => &mut self.responder,
        }
    }
}

/// Who the client of a connection is, as far as anything told so far.
///
/// This is the one place direction is derived from: every event's
/// [`Direction`] comes from [`Role::dir`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Role {
    client: Option<Side>,
}

/// How a layer learned who the client is; see [`Role::learn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleFact {
    /// A hint (an HTTP request head, masked frames): taken only while
    /// nothing else is known.
    Suggests(Side),
    /// Proof (a 101 reply, a client framing after its upgrade request): it
    /// replaces whatever was believed before.
    Proves(Side),
}

impl Role {
    /// The client is known to be `side` (a SYN was seen).
    pub fn known(side: Side) -> Self {
        Role { client: Some(side) }
    }

    pub fn client(self) -> Option<Side> {
        self.client
    }

    /// Takes in what a layer learned.
    pub fn learn(&mut self, fact: RoleFact) {
        match fact {
            RoleFact::Suggests(side) => {
                self.client.get_or_insert(side);
            }
            RoleFact::Proves(side) => self.client = Some(side),
        }
    }

    /// The direction of bytes sent by `side`.
    pub fn dir(self, side: Side) -> Direction {
        match self.client {
            Some(c) if c == side => Direction::ClientToServer,
            Some(_) => Direction::ServerToClient,
            None => Direction::Unknown,
        }
    }

    /// True when `side` is known to be the client.
    pub fn is_client(self, side: Side) -> Option<bool> {
        self.client.map(|c| c == side)
    }
}
