//! The four engines behind one trait, each configured as the node would use it: a
//! 64 MiB cache (unless told otherwise), one atomic batch per block, durable when
//! `commit` returns.

use std::path::Path;

use anyhow::Result;

pub trait Engine {
    /// Writes one block's batch atomically; durable on return.
    fn commit(&mut self, block: &[(Vec<u8>, Vec<u8>)]) -> Result<()>;
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Keys and values held (a full scan), to tell data from the engine's overhead.
    fn live_bytes(&self) -> Result<u64>;
}

pub const NAMES: &[&str] = &["sled", "redb", "fjall", "rocksdb"];

pub fn open(name: &str, dir: &Path, cache_bytes: u64) -> Result<Box<dyn Engine>> {
    std::fs::create_dir_all(dir)?;
    match name {
        #[cfg(feature = "sled")]
        "sled" => Ok(Box::new(sled_engine::open(dir, cache_bytes)?)),
        #[cfg(feature = "redb")]
        "redb" => Ok(Box::new(redb_engine::open(dir, cache_bytes)?)),
        #[cfg(feature = "fjall")]
        "fjall" => Ok(Box::new(fjall_engine::open(dir, cache_bytes)?)),
        #[cfg(feature = "rocksdb")]
        "rocksdb" => Ok(Box::new(rocksdb_engine::open(dir, cache_bytes)?)),
        other => anyhow::bail!("engine {other} is not built in (features: {NAMES:?})"),
    }
}

#[cfg(feature = "sled")]
mod sled_engine {
    use super::*;

    pub struct Sled(sled::Db);

    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Sled> {
        Ok(Sled(
            sled::Config::new()
                .path(dir)
                .cache_capacity(cache_bytes)
                .open()?,
        ))
    }

    impl Engine for Sled {
        fn commit(&mut self, block: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
            let mut b = sled::Batch::default();
            for (k, v) in block {
                b.insert(k.as_slice(), v.as_slice());
            }
            self.0.apply_batch(b)?;
            self.0.flush()?;
            Ok(())
        }
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
            Ok(self.0.get(key)?.map(|v| v.to_vec()))
        }
        fn live_bytes(&self) -> Result<u64> {
            let mut n = 0;
            for kv in self.0.iter() {
                let (k, v) = kv?;
                n += (k.len() + v.len()) as u64;
            }
            Ok(n)
        }
    }
}

#[cfg(feature = "redb")]
mod redb_engine {
    use super::*;
    use redb::{ReadableDatabase, ReadableTable, TableDefinition};

    const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");

    pub struct Redb(redb::Database);

    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Redb> {
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes as usize)
            .create(dir.join("store.redb"))?;
        Ok(Redb(db))
    }

    impl Engine for Redb {
        fn commit(&mut self, block: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
            let tx = self.0.begin_write()?;
            {
                let mut t = tx.open_table(TABLE)?;
                for (k, v) in block {
                    t.insert(k.as_slice(), v.as_slice())?;
                }
            }
            tx.commit()?;
            Ok(())
        }
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
            let tx = self.0.begin_read()?;
            let t = tx.open_table(TABLE)?;
            Ok(t.get(key)?.map(|v| v.value().to_vec()))
        }
        fn live_bytes(&self) -> Result<u64> {
            let tx = self.0.begin_read()?;
            let t = tx.open_table(TABLE)?;
            let mut n = 0;
            for kv in t.iter()? {
                let (k, v) = kv?;
                n += (k.value().len() + v.value().len()) as u64;
            }
            Ok(n)
        }
    }
}

#[cfg(feature = "fjall")]
mod fjall_engine {
    use super::*;
    use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

    pub struct Fjall {
        db: Database,
        ks: Keyspace,
    }

    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Fjall> {
        // As the store configures it (node/store/src/kv.rs): small memtables and a
        // short journal, so that memory stays flat while compaction catches up.
        let db = Database::builder(dir)
            .cache_size(cache_bytes)
            .max_journaling_size(128 << 20)
            .open()?;
        let ks = db.keyspace("kv", || {
            KeyspaceCreateOptions::default().max_memtable_size(16 << 20)
        })?;
        Ok(Fjall { db, ks })
    }

    impl Engine for Fjall {
        fn commit(&mut self, block: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
            let mut b = self.db.batch();
            for (k, v) in block {
                b.insert(&self.ks, k.as_slice(), v.as_slice());
            }
            b.commit()?;
            // fjall does not sync unless told to.
            self.db.persist(PersistMode::SyncAll)?;
            Ok(())
        }
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
            Ok(self.ks.get(key)?.map(|v| v.to_vec()))
        }
        fn live_bytes(&self) -> Result<u64> {
            let mut n = 0;
            for kv in self.ks.iter() {
                let (k, v) = kv.into_inner()?;
                n += (k.len() + v.len()) as u64;
            }
            Ok(n)
        }
    }
}

#[cfg(feature = "rocksdb")]
mod rocksdb_engine {
    use super::*;
    use rocksdb::{BlockBasedOptions, Cache, DB, DBCompressionType, Options, WriteBatch, WriteOptions};

    pub struct Rocks(DB);

    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Rocks> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_compression_type(DBCompressionType::Lz4);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&Cache::new_lru_cache(cache_bytes as usize));
        // Index and filter blocks inside the cache, so that it bounds them too.
        table.set_cache_index_and_filter_blocks(true);
        table.set_bloom_filter(10.0, false);
        opts.set_block_based_table_factory(&table);
        Ok(Rocks(DB::open(&opts, dir)?))
    }

    impl Engine for Rocks {
        fn commit(&mut self, block: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
            let mut b = WriteBatch::default();
            for (k, v) in block {
                b.put(k, v);
            }
            let mut wo = WriteOptions::default();
            wo.set_sync(true);
            self.0.write_opt(b, &wo)?;
            Ok(())
        }
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
            Ok(self.0.get(key)?)
        }
        fn live_bytes(&self) -> Result<u64> {
            let mut n = 0;
            for kv in self.0.iterator(rocksdb::IteratorMode::Start) {
                let (k, v) = kv?;
                n += (k.len() + v.len()) as u64;
            }
            Ok(n)
        }
    }
}
