//! Interned auxiliary attributes: each distinct canonical JSON is kept once in `dims` and
//! events hold its id. A bounded cache on the connection answers most look-ups both ways.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension};

use crate::error::Result;
use crate::model::Attributes;
use crate::storage::attributes;

/// How many entries each direction keeps before it starts afresh (the hot set is the recent
/// days' combinations; a cold one is one query away).
const CAPACITY: usize = 100_000;

#[derive(Default)]
pub struct Dims {
    ids: HashMap<String, i64>,
    attrs: HashMap<i64, Arc<Attributes>>,
}

impl Dims {
    /// The id of `aux` inside `tx`, interning it when new. An id interned by a transaction
    /// that rolls back must not outlive it: callers [`Dims::remember`] what this returns as
    /// new only once their transaction has committed.
    pub fn id(&self, tx: &Connection, aux: &str) -> Result<(i64, bool)> {
        if let Some(id) = self.ids.get(aux) {
            return Ok((*id, false));
        }
        if let Some(id) = tx
            .prepare_cached("SELECT id FROM dims WHERE aux = ?1")?
            .query_row([aux], |r| r.get(0))
            .optional()?
        {
            return Ok((id, true));
        }
        tx.prepare_cached("INSERT INTO dims (aux) VALUES (?1)")?
            .execute([aux])?;
        Ok((tx.last_insert_rowid(), true))
    }

    /// Keeps ids that are now committed.
    pub fn remember(&mut self, learned: Vec<(String, i64)>) {
        if self.ids.len() + learned.len() > CAPACITY {
            self.ids.clear();
        }
        self.ids.extend(learned);
    }

    /// The attributes of a dim id.
    pub fn attrs(&mut self, conn: &Connection, id: i64) -> Result<Arc<Attributes>> {
        if let Some(a) = self.attrs.get(&id) {
            return Ok(a.clone());
        }
        let text: String = conn
            .prepare_cached("SELECT aux FROM dims WHERE id = ?1")?
            .query_row([id], |r| r.get(0))?;
        let a = Arc::new(attributes(&text));
        if self.attrs.len() >= CAPACITY {
            self.attrs.clear();
        }
        self.attrs.insert(id, a.clone());
        Ok(a)
    }
}

/// The values of one grouping for each dim id met, each projected once.
pub struct Projection<'g> {
    grouping: &'g [String],
    done: HashMap<i64, Attributes>,
}

impl<'g> Projection<'g> {
    pub fn new(grouping: &'g [String]) -> Self {
        Self {
            grouping,
            done: HashMap::new(),
        }
    }

    /// The grouping's values in the attributes of `dim`.
    pub fn of(&mut self, conn: &Connection, dims: &mut Dims, dim: i64) -> Result<&Attributes> {
        if !self.done.contains_key(&dim) {
            let g = crate::storage::project(&*dims.attrs(conn, dim)?, self.grouping);
            self.done.insert(dim, g);
        }
        Ok(&self.done[&dim])
    }
}
