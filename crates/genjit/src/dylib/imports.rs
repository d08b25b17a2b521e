//! The import index: which live importer uses which JIT name.
//!
//! A name may disappear (removal) or move (data redefined, a function given a fresh entry) only if no live
//! module outside the change imports it; the index answers "who imports `name` of dylib `D`" without
//! scanning modules. Importers are modules and redirectable symbols that point at a JIT function, each
//! known by its serial. The index is JIT-wide and lives behind the session's *import lock*, so a module
//! cannot start importing a name while another thread decides that nobody imports it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Who imports a name, for [`Error::ModuleInUse`](crate::Error::ModuleInUse).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Importer {
    /// A module.
    Module {
        /// The module's name.
        module: String,
        /// Its dylib.
        dylib: String,
    },
    /// An explicit redirectable symbol pointing at the name.
    Redirectable {
        /// The redirectable symbol.
        symbol: String,
        /// Its dylib.
        dylib: String,
    },
}

impl fmt::Display for Importer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Importer::Module { module, dylib } => write!(f, "module `{module}` of dylib `{dylib}`"),
            Importer::Redirectable { symbol, dylib } => {
                write!(f, "redirectable `{symbol}` of dylib `{dylib}`")
            }
        }
    }
}

/// `(dylib id, name)` to importer serial and who that is, and the reverse.
#[derive(Debug, Default)]
pub(crate) struct Imports {
    by_name: HashMap<(u64, String), BTreeMap<u64, Importer>>,
    by_importer: HashMap<u64, Vec<(u64, String)>>,
}

impl Imports {
    /// Notes that importer `serial` uses `name` of dylib `dylib`.
    pub(crate) fn record(&mut self, dylib: u64, name: &str, serial: u64, importer: &Importer) {
        self.by_name.entry((dylib, name.to_string())).or_default().insert(serial, importer.clone());
        self.by_importer.entry(serial).or_default().push((dylib, name.to_string()));
    }

    /// Drops every record of importer `serial` (it was removed or redirected).
    pub(crate) fn forget(&mut self, serial: u64) {
        for key in self.by_importer.remove(&serial).unwrap_or_default() {
            if let Some(set) = self.by_name.get_mut(&key) {
                set.remove(&serial);
                if set.is_empty() {
                    self.by_name.remove(&key);
                }
            }
        }
    }

    /// The importers of `name` in dylib `dylib`: serial and who.
    pub(crate) fn importers(&self, dylib: u64, name: &str) -> impl Iterator<Item = (u64, &Importer)> {
        self.by_name
            .get(&(dylib, name.to_string()))
            .into_iter()
            .flat_map(|set| set.iter().map(|(s, i)| (*s, i)))
    }

    /// Whether anyone imports `name` of dylib `dylib`.
    pub(crate) fn is_imported(&self, dylib: u64, name: &str) -> bool {
        self.importers(dylib, name).next().is_some()
    }
}
