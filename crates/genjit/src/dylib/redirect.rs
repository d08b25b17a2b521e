//! Explicit redirectable symbols (LLVM's `RedirectionManager`): entries whose target the user sets.
//!
//! A redirectable is an entry like a module function's, owned by no module. Its target is a host function
//! (with or without a signature) or another JIT symbol's *entry*, so it follows that symbol's later
//! redefinitions. Pointing at a JIT symbol records an import (under the redirectable's own serial), so the
//! target cannot be removed from under it without [`Removal::Force`](crate::Removal). Cycles of
//! redirectables and signature changes are refused.

use super::imports::Importer;
use super::table::{next_serial, Definition};
use super::{Dylib, RedirectTarget, Redirection};
use crate::error::{Definer, Error, RedirectRefusal, Result};
use crate::runtime::entry::{Entry, EntryTable, Owner, Target};
use crate::signature::Signature;
use std::sync::Arc;

/// What a redirection resolves to: the address, what keeps it alive, its signature, and the JIT name it
/// imports (dylib id, name), if any.
struct Resolved {
    addr: usize,
    owner: Owner,
    signature: Option<Signature>,
    import: Option<(u64, String)>,
}

impl Dylib {
    pub(super) fn redirectable(&self, name: &str, target: RedirectTarget<'_>, create: bool) -> Result<()> {
        let refuse = |reason| Error::Redirect {
            symbol: name.to_string(),
            dylib: self.shared.name.to_string(),
            reason: Box::new(reason),
        };
        let mut state = self.shared.state.lock();
        let mut imports = self.session.imports.lock();
        let existing = self.shared.symbols.read().get(name).cloned();
        if !create && !state.redirectables.contains_key(name) {
            return Err(refuse(RedirectRefusal::NotRedirectable));
        }
        let Resolved { addr, owner, signature, import } =
            self.resolve_redirect(name, target).map_err(|e| match e {
                Ok(reason) => refuse(reason),
                Err(e) => e,
            })?;
        let entry = if create {
            if existing.is_some() || state.orphans.contains_key(name) {
                return Err(Error::DuplicateDefinition {
                    symbol: name.to_string(),
                    definer: Definer::Redirectable,
                    dylib: Some(self.shared.name.to_string()),
                });
            }
            EntryTable::create(&self.session.entries, self.shared.scope, name.into(), signature.clone())
                .map_err(Error::Heap)?
        } else {
            match (existing, state.redirectables.contains_key(name)) {
                (Some(Definition::Function { entry, .. }), true) => {
                    if let Some(expected) =
                        entry.signature().cloned().filter(|s| Some(s) != signature.as_ref())
                    {
                        let (expected, found) = (Box::new(expected), signature.map(Box::new));
                        return Err(refuse(RedirectRefusal::SignatureMismatch { expected, found }));
                    }
                    entry
                }
                _ => return Err(refuse(RedirectRefusal::NotRedirectable)),
            }
        };
        let serial = *state.redirectables.entry(name.to_string()).or_insert_with(next_serial);
        imports.forget(serial);
        if let Some((dylib, symbol)) = import {
            let importer =
                Importer::Redirectable { symbol: name.to_string(), dylib: self.shared.name.to_string() };
            imports.record(dylib, &symbol, serial, &importer);
        }
        if let Some(target) = owner.as_entry() {
            // Before the redirection is visible: a pin in this dylib now reaches the target's dylib.
            self.shared.domain.link(entry.scope(), target.scope());
        }
        entry.redirect(Some(Target { addr, owner }));
        if create {
            let def = Definition::Function { entry, module: None, hidden: false };
            self.shared.symbols.write().insert(name.into(), def);
        }
        Ok(())
    }

    /// Where `target` points; `Err(Ok(reason))` refuses the redirection, `Err(Err(e))` is a lookup error.
    fn resolve_redirect(
        &self,
        name: &str,
        target: RedirectTarget<'_>,
    ) -> std::result::Result<Resolved, std::result::Result<RedirectRefusal, Error>> {
        let host = |addr, signature| Resolved { addr, owner: Owner::host(), signature, import: None };
        Ok(match target.0 {
            Redirection::Address(addr) => host(addr, None),
            Redirection::Host(addr, sig) => host(addr, Some(sig())),
            Redirection::Symbol(dylib, symbol) => match dylib.definition(symbol).map_err(Err)? {
                Definition::Function { entry, .. } => {
                    if self.leads_back(&entry, name) {
                        return Err(Ok(RedirectRefusal::Cycle { through: symbol.to_string() }));
                    }
                    Resolved {
                        addr: entry.stub(),
                        owner: Owner::entry(entry.clone()),
                        signature: entry.signature().cloned(),
                        import: Some((dylib.shared.id, symbol.to_string())),
                    }
                }
                Definition::Host { addr, signature } => host(addr, signature.map(|s| *s)),
                Definition::Data { .. } => return Err(Ok(RedirectRefusal::Data)),
            },
        })
    }

    /// Whether following `entry`'s chain of redirections reaches this dylib's `name`.
    fn leads_back(&self, entry: &Arc<Entry>, name: &str) -> bool {
        let mut hop = Some(entry.clone());
        while let Some(e) = hop {
            let (dylib, own) = e.names();
            if *own == *name && dylib == self.shared.name {
                return true;
            }
            hop = e.target().and_then(|t| t.owner.as_entry());
        }
        false
    }
}
