//! A module once it is linked and published: its memory, its definitions and its lifecycle.
//!
//! ## Lifecycle (drop order written down)
//! 1. `Linked` (from the linker) becomes a [`LoadedModule`]: `.eh_frame` is registered with the unwinder.
//! 2. The dylib publishes its symbols and runs `.init_array` (outside every lock, so a constructor may use
//!    the JIT).
//! 3. On removal the dylib unpublishes the symbols and runs `.fini_array`. The `LoadedModule` itself lives on
//!    while anything still holds it: a [`Func`](crate::Func) handle, or a module that imported one of its
//!    symbols (each module holds its exporters in `deps`). Code is therefore never freed while code that can
//!    reach it through a resolved address is alive.
//! 4. `Drop`: deregister `.eh_frame`, retire its thread-local templates, then give both blocks back to the heap
//!    (code is filled with `int3` there).

use crate::heap::{Block, Heap};
use crate::link::{DefinedSymbol, Linked, RelocRecord};
use crate::signature::Signature;
use crate::sys;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A linked, published module. Shared by its dylib, its `Func` handles and the modules that import from it.
#[derive(Debug)]
pub struct LoadedModule {
    pub(crate) name: String,
    pub(crate) serial: u64,
    code: Option<Block>,
    data: Option<Block>,
    heap: Arc<Mutex<Heap>>,
    pub(crate) symbols: Vec<DefinedSymbol>,
    pub(crate) signatures: HashMap<String, Signature>,
    pub(crate) init: Vec<usize>,
    pub(crate) fini: Vec<usize>,
    eh_frame: Option<usize>,
    /// The modules this one resolved names into: held so their code outlives every caller in this one.
    #[allow(dead_code)] // held for ownership, never read
    deps: Vec<Arc<LoadedModule>>,
    #[allow(dead_code)] // kept for relinking at another address (compaction)
    relocs: Vec<RelocRecord>,
}

impl LoadedModule {
    pub(crate) fn new(
        name: String,
        serial: u64,
        linked: Linked,
        heap: Arc<Mutex<Heap>>,
        signatures: HashMap<String, Signature>,
        deps: Vec<Arc<LoadedModule>>,
    ) -> LoadedModule {
        if let Some(eh) = linked.eh_frame {
            // SAFETY: the linker placed the relocated `.eh_frame` at `eh` in this module's code block and
            // zeroed the four bytes after it; the block lives until `Drop`, which deregisters first.
            unsafe { sys::register_eh_frame(eh) };
        }
        LoadedModule {
            name,
            serial,
            code: linked.code,
            data: linked.data,
            heap,
            symbols: linked.symbols,
            signatures,
            init: linked.init,
            fini: linked.fini,
            eh_frame: linked.eh_frame,
            deps,
            relocs: linked.relocs,
        }
    }

    /// The module's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the entries of an init or fini list.
    ///
    /// The entries are `void (*)(void)` functions produced by the compiler for `llvm.global_ctors` /
    /// `llvm.global_dtors` and relocated into this module's code.
    pub(crate) fn run_list(&self, list: &[usize]) {
        for &f in list {
            // SAFETY: `f` comes from this module's relocated `.init_array`/`.fini_array`, which hold
            // `void(void)` function addresses inside code that `self` keeps mapped.
            let f: extern "C" fn() = unsafe { std::mem::transmute::<usize, extern "C" fn()>(f) };
            f();
        }
    }
}

impl Drop for LoadedModule {
    fn drop(&mut self) {
        if let Some(eh) = self.eh_frame {
            // SAFETY: registered in `new` with the same address, and deregistered exactly once here.
            unsafe { sys::deregister_eh_frame(eh) };
        }
        if let Some(data) = &self.data {
            crate::tls::retire_templates(data.addr(), data.addr() + data.len());
        }
        let mut heap = self.heap.lock().unwrap_or_else(|e| e.into_inner());
        self.code.take().into_iter().chain(self.data.take()).for_each(|b| heap.free(b));
    }
}
