//! The frames of a first tier's functions, read from the stack maps LLVM writes (`.llvm_stackmaps`,
//! format version 3: <https://llvm.org/docs/StackMaps.html#stack-map-format>).
//!
//! A first-tier function with an OSR transfer records one stack map ([`FRAME_ID`]): its frame array,
//! then each of its stack slots, as `Direct` locations (a frame register plus an offset). What the
//! runtime needs is where each slot is relative to the array, whatever register the frame is addressed
//! from; the transfer passes the array's address (see `compile::osr`). The section itself is not placed
//! in the module (nothing else reads it: its symbol `__LLVM_StackMaps` is local), only these offsets are
//! kept.

use super::{FrameSlots, ObjFile};
use crate::compile::osr::FRAME_ID;
use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget};
use std::collections::HashMap;

/// The section LLVM writes stack maps to.
pub(super) const SECTION: &str = ".llvm_stackmaps";

/// Location kinds of the format.
const DIRECT: u8 = 2;

/// Each function with a frame stack map and its slots' offsets from its frame array, in the order the
/// first tier listed them (`osr::slots`). A stack map that is not one of genjit's, or whose locations are
/// not all addressed from one register, gives nothing (the function's loops are then never entered):
/// this never fails a link.
pub(super) fn frames(file: &ObjFile<'_>) -> Vec<FrameSlots> {
    let Some(section) = file.section_by_name(SECTION) else { return Vec::new() };
    let Ok(bytes) = section.data() else { return Vec::new() };
    // Which function each size record describes: its address field is relocated against the function.
    let mut names: HashMap<u64, &str> = HashMap::new();
    for (offset, reloc) in section.relocations() {
        if let RelocationTarget::Symbol(index) = reloc.target() {
            if let Some(name) = file.symbol_by_index(index).ok().and_then(|s| s.name().ok()) {
                names.insert(offset, name);
            }
        }
    }
    parse(bytes, &|offset| names.get(&offset).copied()).unwrap_or_default()
}

/// Reads `bytes` as a stack map section; `name_at` names the function whose address field is at an
/// offset. `None` if the section is not what the format says.
fn parse<'n>(bytes: &[u8], name_at: &dyn Fn(u64) -> Option<&'n str>) -> Option<Vec<FrameSlots>> {
    let mut r = Reader { bytes, at: 0 };
    if r.u8()? != 3 {
        return None; // another version
    }
    r.skip(3)?;
    let (functions, constants, records) = (r.u32()?, r.u32()?, r.u32()?);
    let mut sizes = Vec::new();
    for _ in 0..functions {
        let name = name_at(r.at as u64);
        r.skip(16)?; // address, stack size
        sizes.push((name, r.u64()?));
    }
    r.skip(8 * constants as usize)?;
    let mut out = Vec::new();
    let mut ambiguous: Vec<&str> = Vec::new();
    let mut records_left = records;
    for (name, count) in sizes {
        for _ in 0..count {
            records_left = records_left.checked_sub(1)?;
            let id = r.u64()?;
            r.skip(6)?; // instruction offset, reserved
            let locations = r.u16()?;
            let mut base = None;
            let mut offsets = Vec::with_capacity(usize::from(locations));
            let mut usable = true;
            for _ in 0..locations {
                let (kind, _, _size, register, _) = (r.u8()?, r.u8()?, r.u16()?, r.u16()?, r.u16()?);
                let offset = r.i32()?;
                usable &= kind == DIRECT && *base.get_or_insert(register) == register;
                offsets.push(offset);
            }
            r.align(8)?;
            r.skip(2)?; // padding
            let live_outs = r.u16()?;
            r.skip(4 * usize::from(live_outs))?;
            r.align(8)?;
            if id != FRAME_ID {
                continue;
            }
            // A second map with genjit's ID in one function (the IR had one of its own) makes the
            // function's frame ambiguous: it gets none, so the runtime never fills an array from a
            // description that may not be its own.
            match (usable, name, offsets.split_first()) {
                (_, Some(name), _) if out.iter().any(|(n, _): &FrameSlots| **n == *name) => {
                    ambiguous.push(name);
                }
                (true, Some(name), Some((&array, slots))) => {
                    let relative = slots.iter().map(|&o| o.checked_sub(array)).collect::<Option<Box<_>>>()?;
                    out.push((name.into(), relative));
                }
                (_, Some(name), _) => ambiguous.push(name),
                _ => {}
            }
        }
    }
    out.retain(|(n, _)| !ambiguous.contains(&&**n));
    Some(out)
}

/// A little-endian cursor that answers `None` past the end.
struct Reader<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let b = self.bytes.get(self.at..self.at.checked_add(N)?)?;
        self.at += N;
        b.try_into().ok()
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        self.at = self.at.checked_add(n).filter(|&at| at <= self.bytes.len())?;
        Some(())
    }
    fn align(&mut self, to: usize) -> Option<()> {
        self.skip(self.at.next_multiple_of(to) - self.at)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A section as llc-19 writes it for three functions: `f` with genjit's frame map (array at -72,
    /// slots at -4, -16, -20) and another map, `g` with a frame map whose slots are not all `Direct`, `h`
    /// with two frame maps.
    fn section() -> (Vec<u8>, HashMap<u64, &'static str>) {
        let mut b = vec![3, 0, 0, 0];
        b.extend(3u32.to_le_bytes()); // functions
        b.extend(0u32.to_le_bytes()); // constants
        b.extend(5u32.to_le_bytes()); // records
        let mut names = HashMap::new();
        for (name, records) in [("f", 2u64), ("g", 1), ("h", 2)] {
            names.insert(b.len() as u64, name);
            b.extend(0u64.to_le_bytes());
            b.extend(88u64.to_le_bytes());
            b.extend(records.to_le_bytes());
        }
        let record = |b: &mut Vec<u8>, id: u64, locations: &[(u8, u16, i32)]| {
            b.extend(id.to_le_bytes());
            b.extend(106u32.to_le_bytes());
            b.extend(0u16.to_le_bytes());
            b.extend((locations.len() as u16).to_le_bytes());
            for &(kind, register, offset) in locations {
                b.extend([kind, 0]);
                b.extend(8u16.to_le_bytes());
                b.extend(register.to_le_bytes());
                b.extend(0u16.to_le_bytes());
                b.extend(offset.to_le_bytes());
            }
            b.resize(b.len().next_multiple_of(8), 0);
            b.extend(0u16.to_le_bytes());
            b.extend(1u16.to_le_bytes()); // one live-out
            b.extend([7, 0, 8, 0]);
            b.resize(b.len().next_multiple_of(8), 0);
        };
        record(&mut b, 7, &[(DIRECT, 6, -8)]);
        record(&mut b, FRAME_ID, &[(DIRECT, 6, -72), (DIRECT, 6, -4), (DIRECT, 6, -16), (DIRECT, 6, -20)]);
        record(&mut b, FRAME_ID, &[(DIRECT, 7, -72), (1, 3, 0)]);
        // `h`: two maps with genjit's ID (one the IR's own): which describes the frame is unknown.
        record(&mut b, FRAME_ID, &[(DIRECT, 6, -16), (DIRECT, 6, -8)]);
        record(&mut b, FRAME_ID, &[(DIRECT, 6, -40), (DIRECT, 6, -8), (DIRECT, 6, -24), (DIRECT, 6, -32)]);
        (b, names)
    }

    /// What LLVM 19 writes for a first tier with a transfer reads back as one frame per such function,
    /// a distinct slot for each of its `alloca`s, none overlapping the array or each other.
    #[test]
    fn a_first_tiers_frames_read_back_from_its_object() {
        use crate::compile::tier::{count_calls, Thresholds};
        use inkwell::context::Context;
        use inkwell::memory_buffer::MemoryBuffer;
        use inkwell::targets::FileType;
        const IR: &str =
            "define i64 @sum(i64 %n) {\nentry:\n  %i = alloca i64\n  %acc = alloca [3 x i64]\n  \
            %b = alloca i8\n  store i64 0, ptr %i\n  br label %head\nhead:\n  %v = load i64, ptr %i\n  \
            %more = icmp slt i64 %v, %n\n  br i1 %more, label %body, label %done\nbody:\n  \
            store i64 %v, ptr %acc\n  %v1 = add i64 %v, 1\n  store i64 %v1, ptr %i\n  br label %head\n\
            done:\n  %r = load i64, ptr %acc\n  ret i64 %r\n}\n\
            define i64 @flat(i64 %x) {\n  ret i64 %x\n}\n";
        let context = Context::create();
        let buffer = MemoryBuffer::create_from_memory_range_copy(IR.as_bytes(), "frames");
        let module = context.create_module_from_ir(buffer).unwrap();
        let thresholds = Thresholds { calls: Some(10), back_edges: Some(10), osr: true, cleanup: false };
        count_calls(&module, "1", thresholds, &[]);
        module.verify().unwrap();
        let machine = crate::host_target_machine(crate::OptLevel::O0).unwrap();
        let object = machine.write_to_memory_buffer(&module, FileType::Object).unwrap();
        let file = ObjFile::parse(object.as_slice()).unwrap();
        let frames = frames(&file);
        assert_eq!(frames.len(), 1, "{frames:?}");
        let (name, slots) = &frames[0];
        assert_eq!((&**name, slots.len()), ("sum", 3));
        // The array is three pointers; the slots are 8, 24 and 1 bytes.
        let mut spans: Vec<(i32, i32)> =
            [(0, 24)].into_iter().chain(slots.iter().zip([8, 24, 1]).map(|(&o, n)| (o, o + n))).collect();
        spans.sort();
        assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "overlapping: {spans:?}");
    }

    #[test]
    fn frames_are_read_relative_to_the_array_and_only_from_genjits_maps() {
        let (bytes, names) = section();
        let frames = parse(&bytes, &|o| names.get(&o).copied()).unwrap();
        assert_eq!(frames, [("f".into(), vec![68, 56, 52].into())]);
        // Cut anywhere, the section reads as nothing or as less, never past its end.
        for len in 0..bytes.len() {
            let _ = parse(&bytes[..len], &|o| names.get(&o).copied());
        }
        assert!(parse(&bytes[..bytes.len() - 1], &|o| names.get(&o).copied()).is_none());
    }
}
