//! The change-detection index an import holds in memory: one entry per stored
//! dossier (its id's hash and its raw record's hash), sorted by hash; the
//! changes an import makes to it ([`IndexChanges`]), merged in when it commits.

use super::*;

/// The compact state of a connector, 24 bytes a dossier: for every stored dossier,
/// 96 bits of the hash of its id, its row id, the raw hash of its last record and
/// whether it is present (the store's [`Entry`], read whole at the start of an
/// import and written whole before it commits). Sorted by id hash, with a
/// directory on the top bits of the hash, so that a lookup touches one or two
/// cache lines instead of twenty (the hashes are uniform). Two ids sharing 96
/// hash bits among millions is a 1-in-10^16 event, and the store still compares
/// the real ids before using a match.
pub(super) struct Index {
    pub(super) entries: Vec<Entry>,
    /// `entries[buckets[b]..buckets[b + 1]]` holds the keys whose top `bits` bits are `b`.
    pub(super) buckets: Vec<u32>,
    pub(super) bits: u32,
}

impl Index {
    pub(super) fn load(store: &ImportTx<'_>, connector: &str) -> Result<Self, StoreError> {
        Ok(Self::sorted(store.load_index(connector)?))
    }

    /// Sorts entries by key, in place, and builds the directory: a radix pass
    /// on the top 8 bits of the id hash (American flag sort: each swap puts an
    /// entry in its part for good), then a comparison sort of each part, small
    /// enough to stay in the cache. A radix pass on the top 20 bits, whose swaps
    /// land anywhere in the 24 MB of a million entries, took 0.2 s more at the
    /// end of a first import.
    pub(super) fn sorted(mut entries: Vec<Entry>) -> Self {
        // A stored index is stored sorted.
        if !entries.is_sorted_by_key(Entry::order) {
            sort_by_hash(&mut entries, |e| e.hi, Entry::order);
        }
        // The directory for lookups: where each value of the top `bits` bits starts.
        let bits = entries.len().max(2).ilog2().clamp(1, 24);
        let bucket_of = |e: &Entry| (e.hi >> (64 - bits)) as usize;
        let mut buckets = vec![0u32; (1 << bits) + 1];
        for e in &entries {
            buckets[bucket_of(e) + 1] += 1;
        }
        for b in 1..buckets.len() {
            buckets[b] += buckets[b - 1];
        }
        Self {
            entries,
            buckets,
            bits,
        }
    }

    pub(super) fn find(&self, key: IdKey) -> Option<usize> {
        let bucket = (key.0 >> (64 - self.bits)) as usize;
        let (from, to) = (
            self.buckets[bucket] as usize,
            self.buckets[bucket + 1] as usize,
        );
        self.entries[from..to]
            .iter()
            .position(|e| e.key() == key)
            .map(|i| from + i)
    }

    /// Whether the stored dossier at `at` is present and its raw record hashed `hash`.
    pub(super) fn unchanged(&self, at: usize, hash: u64) -> bool {
        let e = &self.entries[at];
        e.same_hash(hash) && e.present()
    }
}

/// Where the stored state of a dossier read again is.
#[derive(Clone, Copy)]
pub(super) enum Slot {
    /// In the index, at this position.
    Stored(usize),
    /// Among the dossiers this import created, at this position.
    Added(usize),
}

/// What an import changes in the index, kept aside until it commits.
pub(super) struct IndexChanges {
    /// New raw hashes of stored dossiers, by position in the index.
    rehashed: Vec<(usize, u64)>,
    /// The dossiers this import created.
    added: Vec<Entry>,
    /// Where each dossier this import created is in `added`, when an API may
    /// send one again (see [`Sightings`]).
    inserted: std::collections::HashMap<IdKey, usize>,
    repeats_replace: bool,
}

impl IndexChanges {
    pub(super) fn new(repeats_replace: bool) -> Self {
        Self {
            rehashed: Vec::new(),
            added: Vec::new(),
            inserted: std::collections::HashMap::new(),
            repeats_replace,
        }
    }

    /// The stored dossier a record reads again: stored before (at `at` in the
    /// index), or created by this import and sent again.
    pub(super) fn held(&self, index: &Index, at: Option<usize>, key: IdKey) -> Option<Held> {
        let slot = match at {
            Some(i) => Slot::Stored(i),
            None => Slot::Added(*self.inserted.get(&key)?),
        };
        let (rowid, present) = match slot {
            Slot::Stored(i) => {
                let e = &index.entries[i];
                (e.dossier_id(), e.present())
            }
            Slot::Added(a) => (self.added[a].dossier_id(), true),
        };
        Some(Held {
            rowid,
            present,
            slot,
        })
    }

    /// Notes the new raw hash of a dossier read again.
    pub(super) fn read_again(&mut self, slot: Slot, row_hash: u64) {
        match slot {
            Slot::Stored(i) => self.rehashed.push((i, row_hash)),
            Slot::Added(a) => self.added[a].set(row_hash, true),
        }
    }

    /// Notes a dossier this import created, row `rowid`.
    pub(super) fn created(
        &mut self,
        key: IdKey,
        rowid: i64,
        row_hash: u64,
    ) -> Result<(), StoreError> {
        if self.repeats_replace {
            self.inserted.insert(key, self.added.len());
        }
        self.added
            .push(Entry::new(key, entry_row(rowid)?, row_hash, true));
        Ok(())
    }

    /// The row of the first dossier this import created whose id hashed `key`.
    pub(super) fn created_with(&self, key: IdKey) -> Option<i64> {
        self.added
            .iter()
            .find(|e| e.key() == key)
            .map(Entry::dossier_id)
    }

    /// The index's entries once this import applied: the stored ones rehashed,
    /// those at the positions `gone` marked absent, and the created ones; both
    /// lists in key order, for [`merge_sorted`].
    pub(super) fn applied(
        self,
        index: Index,
        gone: impl IntoIterator<Item = usize>,
    ) -> (Vec<Entry>, Vec<Entry>) {
        let mut entries = index.entries;
        for (i, row_hash) in self.rehashed {
            entries[i].set(row_hash, true);
        }
        for i in gone {
            entries[i].set_absent();
        }
        (entries, Index::sorted(self.added).entries)
    }
}

/// Sorts items by `order`, whose first part is the hash `hash` gives (see
/// `Index::sorted`): hashes spread evenly over the 256 parts of the radix pass.
pub(super) fn sort_by_hash<T, K: Ord>(
    items: &mut [T],
    hash: impl Fn(&T) -> u64,
    order: impl Fn(&T) -> K,
) {
    const PARTS: usize = 256;
    let part_of = |item: &T| (hash(item) >> 56) as usize;
    let mut starts = [0usize; PARTS + 1];
    for item in items.iter() {
        starts[part_of(item) + 1] += 1;
    }
    for p in 1..=PARTS {
        starts[p] += starts[p - 1];
    }
    let mut next = starts;
    for p in 0..PARTS {
        while next[p] < starts[p + 1] {
            let home = part_of(&items[next[p]]);
            if home != p {
                items.swap(next[p], next[home]);
            }
            next[home] += 1;
        }
    }
    for p in 0..PARTS {
        items[starts[p]..starts[p + 1]].sort_unstable_by_key(&order);
    }
}

/// The entries of two lists sorted by key, in key order.
pub(super) fn merge_sorted<'a>(a: &'a [Entry], b: &'a [Entry]) -> impl Iterator<Item = Entry> + 'a {
    let (mut i, mut j) = (0, 0);
    std::iter::from_fn(move || {
        let next = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if y.order() < x.order() => {
                j += 1;
                y
            }
            (Some(x), _) => {
                i += 1;
                x
            }
            (None, Some(y)) => {
                j += 1;
                y
            }
            (None, None) => return None,
        };
        Some(*next)
    })
}
