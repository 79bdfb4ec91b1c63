"""Two loops written in LLVM IR (numba ``intrinsic``s), where numba's own code leaves speed behind.

Numba has no vector types, so these loops are written in LLVM IR.

:func:`lut_dot`, the batch-1 sparse dot product with the codebook in vector registers. A
scalar loop spends four loads on each stored entry (its code, its column, the codebook value
and the input value) and is bound by the CPU's load ports, not by memory. With AVX2,
:func:`lut_dot` takes eight entries at a time: their eight codes in one load, the values looked
up in a codebook of up to :data:`LUT_SIZE` floats held in four registers (``vpermps`` per
register, two blends on code bits 3 and 4), the eight input values by scalar loads (AVX2 gathers
are slower on the CPUs measured), one fused multiply-add into a vector of partial sums. With
AVX-512 (:data:`AVX512`), sixteen at a time: ``vpermi2ps`` looks the codes up in two registers
and one gather loads the sixteen input values (:func:`_lut_dot16`, 2.2x the AVX2 step's rate).
It is used only where :data:`AVX2` is true: callers test it before the call, and numba drops a
branch on a false module constant before code generation, so nothing here reaches LLVM on other
CPUs. Numba's on-disk cache is keyed by the CPU's name and features, so a cached kernel built
here is not loaded on a CPU without the features it was built for.

:func:`shifted_sum`, the inner loop of the direct sparse convolution: a run of up to
:data:`SUM_RUN` output floats held in :data:`SUM_VECTORS` vector registers while every stored
entry of an output channel adds its weight times its shifted input run, one broadcast and one
fused multiply-add (with its load) per vector. A loop over the run per entry (what LLVM makes of
numba code) loads and stores the sums once per pass, and on short runs (a 7x7 plane is 49 to 63
floats) spends more on each pass's set-up than on its multiply-adds. The last vector of a run
is a masked load and store, so nothing outside the run is read or written. It is plain LLVM
vector IR (no x86 intrinsic): correct on any CPU; :data:`SUM_FLOATS` is 16 (one AVX-512
register) where the CPU has AVX-512 and 8 (one AVX2 register) otherwise.
"""

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

#: Codebook values the register lookup holds (codes 0..31); larger codebooks use the scalar loop.
LUT_SIZE = 32


def _host_has_avx2():
    try:
        import llvmlite.binding as llvm

        feats = llvm.get_host_cpu_features()
        return bool(feats.get("avx2", False)) and bool(feats.get("fma", False))
    except Exception:  # no feature query on this platform: take the portable path
        return False


#: True when this CPU runs the register-lookup kernel (x86-64 with AVX2 and FMA).
AVX2 = _host_has_avx2()


def _host_has_avx512():
    """AVX-512 on this CPU, and numba compiling for it (not for a CPU named in NUMBA_CPU_NAME)."""
    if numba.config.CPU_NAME not in (None, "", "host"):
        return False
    try:
        import llvmlite.binding as llvm

        return bool(llvm.get_host_cpu_features().get("avx512f", False))
    except Exception:
        return False


#: True when this CPU has AVX-512 (and numba compiles for it): :func:`lut_dot` then takes 16
#: entries a step with a gather, :func:`shifted_sum` 16-float vectors.
_AVX512_HOST = _host_has_avx512()
AVX512 = AVX2 and _AVX512_HOST

#: Entries per step of :func:`lut_dot`: ``end - k`` must be a multiple of it.
LUT_STEP = 16 if AVX512 else 8

#: Floats per vector of :func:`shifted_sum`: one AVX-512 register, else one AVX2 register (on
#: a CPU with narrower registers LLVM splits the vector, still correct).
SUM_FLOATS = 16 if _AVX512_HOST else 8

#: Vectors of sums :func:`shifted_sum` keeps in registers (with the broadcast weight and a
#: load, within the 16 registers of AVX2 and the 32 of AVX-512).
SUM_VECTORS = 8

#: Floats of one run held in registers; longer runs are taken SUM_RUN floats at a time.
SUM_RUN = SUM_FLOATS * SUM_VECTORS

_F32 = ir.FloatType()
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_V8F = ir.VectorType(_F32, 8)
_V8I = ir.VectorType(_I32, 8)


def _array_data(context, builder, signature, args, indices):
    """The data pointers of the array arguments `indices` of an intrinsic."""
    return [cgutils.create_struct_proxy(signature.args[i])(context, builder, value=args[i]).data
            for i in indices]


def _vector_loop(b, k0, kend, k_step, starts, step):
    """IR of ``accs = starts; for k in k0..kend-1 by k_step: accs = step(k, accs)`` (k an i64
    compared unsigned, accs a list of vectors); returns the final accs, the builder after the
    loop."""
    pre = b.block
    header = b.append_basic_block("loop.header")
    body = b.append_basic_block("loop.body")
    done = b.append_basic_block("loop.done")
    b.branch(header)
    b.position_at_end(header)
    k = b.phi(_I64)
    k.add_incoming(k0, pre)
    accs = []
    for v in starts:
        p = b.phi(v.type)
        p.add_incoming(v, pre)
        accs.append(p)
    b.cbranch(b.icmp_unsigned("<", k, kend), body, done)
    b.position_at_end(body)
    new = step(k, accs)
    k.add_incoming(b.add(k, ir.Constant(_I64, k_step)), b.block)
    for p, v in zip(accs, new):
        p.add_incoming(v, b.block)
    b.branch(header)
    b.position_at_end(done)
    return accs


def _summing_loop(b, k0, kend, vec, step):
    """IR of ``acc = 0; for k in k0..kend-1 by len(vec): acc = step(k, acc)`` (acc a vector
    of type vec); returns the sum of acc's lanes."""
    n = vec.count
    (acc,) = _vector_loop(b, k0, kend, n, [ir.Constant(vec, [0.0] * n)],
                          lambda k, accs: [step(k, accs[0])])
    total = b.extract_element(acc, ir.Constant(_I32, 0))
    for j in range(1, n):
        total = b.fadd(total, b.extract_element(acc, ir.Constant(_I32, j)))
    return total


@intrinsic
def lut_dot(typingctx, x, col_idx, codes, table, k, end):
    """float32 sum over entries k..end-1 of ``table[codes[i]] * x[col_idx[i]]``.

    x float32[:], col_idx an unsigned or non-negative integer array, codes uint8[:] below
    LUT_SIZE, table float32 with at least LUT_SIZE values, k and end uint64 with ``end - k`` a
    multiple of LUT_STEP, all of them in range (the caller's CSR arrays are checked). No bounds
    are checked here."""
    if not (isinstance(x, types.Array) and x.dtype == types.float32
            and isinstance(col_idx, types.Array) and isinstance(col_idx.dtype, types.Integer)
            and isinstance(codes, types.Array) and codes.dtype == types.uint8
            and isinstance(table, types.Array) and table.dtype == types.float32):
        return None
    sig = types.float32(x, col_idx, codes, table, types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        if AVX512:
            return _lut_dot16(context, builder, signature, args)
        xp, cp, dp, tp = _array_data(context, builder, signature, args, range(4))
        mod = builder.module
        permps = cgutils.get_or_insert_function(mod, ir.FunctionType(_V8F, [_V8F, _V8I]),
                                                "llvm.x86.avx2.permps")
        fma = cgutils.get_or_insert_function(mod, ir.FunctionType(_V8F, [_V8F, _V8F, _V8F]),
                                             "llvm.fma.v8f32")
        regs = []
        for j in range(4):
            ptr = builder.bitcast(builder.gep(tp, [ir.Constant(_I64, 8 * j)]), _V8F.as_pointer())
            ld = builder.load(ptr)
            ld.align = 4
            regs.append(ld)
        zero8 = ir.Constant(_V8I, [0] * 8)
        bit3 = ir.Constant(_V8I, [8] * 8)
        bit4 = ir.Constant(_V8I, [16] * 8)
        code_vec = ir.VectorType(ir.IntType(8), 8)

        def step(k, acc):
            dv = builder.load(builder.bitcast(builder.gep(dp, [k]), code_vec.as_pointer()))
            dv.align = 1
            code = builder.zext(dv, _V8I)
            xv = ir.Constant(_V8F, ir.Undefined)
            for j in range(8):  # scalar column loads: cheaper here than a vector load, extracts
                col = builder.load(builder.gep(cp, [builder.add(k, ir.Constant(_I64, j))]))
                col = builder.zext(col, _I64) if col.type.width < 64 else col
                v = builder.load(builder.gep(xp, [col]))
                v.align = 4
                xv = builder.insert_element(xv, v, ir.Constant(_I32, j))
            p = [builder.call(permps, [regs[j], code]) for j in range(4)]  # by code bits 0..2
            hi3 = builder.icmp_unsigned("!=", builder.and_(code, bit3), zero8)
            hi4 = builder.icmp_unsigned("!=", builder.and_(code, bit4), zero8)
            w = builder.select(hi4, builder.select(hi3, p[3], p[2]),
                               builder.select(hi3, p[1], p[0]))
            return builder.call(fma, [w, xv, acc])

        return _summing_loop(builder, args[4], args[5], _V8F, step)

    return sig, codegen


_VS = ir.VectorType(_F32, SUM_FLOATS)
_VSI = ir.VectorType(_I32, SUM_FLOATS)
_VSL = ir.VectorType(_I64, SUM_FLOATS)
_VSM = ir.VectorType(ir.IntType(1), SUM_FLOATS)
_ZERO = ir.Constant(_VS, [0.0] * SUM_FLOATS)


def _i64(v):
    return ir.Constant(_I64, v)


class _SumEmitter:
    """IR of :func:`shifted_sum`, one loop over the entries per vector count."""

    def __init__(self, builder, ptrs, ints, init, signed_entries):
        self.signed = signed_entries
        self.b = builder
        self.p = ptrs  # xs, entry, codes, codebook, tap_off, acc: element pointers
        self.i = ints  # base, k0, kend, tap_bits, tap_mask, chan_stride (i64)
        self.init = init
        mod = builder.module
        vptr = _VS.as_pointer()
        n = SUM_FLOATS
        self.fma = cgutils.get_or_insert_function(
            mod, ir.FunctionType(_VS, [_VS, _VS, _VS]), f"llvm.fma.v{n}f32")
        self.mload = cgutils.get_or_insert_function(
            mod, ir.FunctionType(_VS, [vptr, _I32, _VSM, _VS]), f"llvm.masked.load.v{n}f32.p0")
        self.mstore = cgutils.get_or_insert_function(
            mod, ir.FunctionType(ir.VoidType(), [_VS, vptr, _I32, _VSM]),
            f"llvm.masked.store.v{n}f32.p0")

    def _vec_ptr(self, base_ptr, index):
        return self.b.bitcast(self.b.gep(base_ptr, [index]), _VS.as_pointer())

    def _load(self, ptr, mask):
        if mask is not None:
            return self.b.call(self.mload, [ptr, ir.Constant(_I32, 4), mask, _ZERO])
        v = self.b.load(ptr)
        v.align = 4
        return v

    def _entry(self, k, seg, sums, nv, mask):
        """sums + value of entry k * its shifted input run from seg (nv vectors)."""
        b = self.b
        xs, entry, codes, codebook, tap_off, _ = self.p
        base, _, _, tap_bits, tap_mask, chan_stride = self.i
        e = b.load(b.gep(entry, [k]))
        if e.type.width < 64:
            e = b.sext(e, _I64) if self.signed else b.zext(e, _I64)
        off = b.load(b.gep(tap_off, [b.and_(e, tap_mask)]))
        src = b.add(b.add(base, b.mul(b.lshr(e, tap_bits), chan_stride)), b.add(off, seg))
        w = b.load(b.gep(codebook, [b.zext(b.load(b.gep(codes, [k])), _I64)]))
        wv = b.insert_element(ir.Constant(_VS, ir.Undefined), w, ir.Constant(_I32, 0))
        wv = b.shuffle_vector(wv, ir.Constant(_VS, ir.Undefined),
                              ir.Constant(_VSI, [0] * SUM_FLOATS))
        out = []
        for j in range(nv):
            v = self._load(self._vec_ptr(xs, b.add(src, _i64(SUM_FLOATS * j))),
                           mask if j == nv - 1 else None)
            out.append(b.call(self.fma, [wv, v, sums[j]]))
        return out

    def run(self, seg, nv, mask):
        """acc[seg : seg + run] = (acc there if init, else 0) + the entries' sum, over nv
        vectors (the last one masked when mask is not None)."""
        b = self.b
        acc = self.p[5]
        k0, kend = self.i[1], self.i[2]
        start = []
        for j in range(nv):
            v = self._load(self._vec_ptr(acc, b.add(seg, _i64(SUM_FLOATS * j))),
                           mask if j == nv - 1 else None)
            start.append(b.select(self.init, v, _ZERO))
        sums = _vector_loop(b, k0, kend, 1, start,
                            lambda k, accs: self._entry(k, seg, accs, nv, mask))
        for j in range(nv):
            ptr = self._vec_ptr(acc, b.add(seg, _i64(SUM_FLOATS * j)))
            if mask is not None and j == nv - 1:
                b.call(self.mstore, [sums[j], ptr, ir.Constant(_I32, 4), mask])
            else:
                b.store(sums[j], ptr).align = 4


def _contiguous(a, dtype):
    return isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and a.dtype == dtype


@intrinsic
def shifted_sum(typingctx, xs, base, k, end, entry, tap_bits, codes, codebook, tap_off,
                chan_stride, acc, n, init):
    """``acc[:n] = (acc[:n] if init else 0) + sum over entries i in k..end-1 of
    codebook[codes[i]] * xs[src_i : src_i + n]``, ``src_i = base + (entry[i] >> tap_bits) *
    chan_stride + tap_off[entry[i] & (2**tap_bits - 1)]``.

    xs, codebook float32, entry any integer type (a convolution's packed uint32 entries, or a
    linear layer's column indices with tap_bits 0 and tap_off [0]), codes uint8, tap_off int64,
    acc float32: contiguous 1-D arrays; the integers int64; init a bool. Nothing is checked
    here: the caller guarantees every index in range (the layer's CSR arrays are checked at
    load, the offsets built from the input's own geometry) and at least n floats in acc."""
    if not (_contiguous(xs, types.float32) and isinstance(entry, types.Array)
            and entry.ndim == 1 and entry.layout == "C" and isinstance(entry.dtype, types.Integer)
            and _contiguous(codes, types.uint8) and _contiguous(codebook, types.float32)
            and _contiguous(tap_off, types.int64) and _contiguous(acc, types.float32)):
        return None
    i64 = types.int64
    sig = types.void(xs, i64, i64, i64, entry, i64, codes, codebook, tap_off, i64, acc, i64,
                     types.boolean)

    def codegen(context, builder, signature, args):
        ptrs = _array_data(context, builder, signature, args, (0, 4, 6, 7, 8, 10))
        tap_bits = args[5]
        tap_mask = builder.sub(builder.shl(_i64(1), tap_bits), _i64(1))
        ints = (args[1], args[2], args[3], tap_bits, tap_mask, args[9])
        em = _SumEmitter(builder, ptrs, ints, args[12], signature.args[4].dtype.signed)
        n = args[11]
        b = builder
        pre = b.block
        head = b.append_basic_block("run.head")
        full = b.append_basic_block("run.full")
        tail = b.append_basic_block("run.tail")
        out = b.append_basic_block("run.out")
        b.branch(head)
        b.position_at_end(head)
        seg = b.phi(_I64)
        seg.add_incoming(_i64(0), pre)
        rem = b.sub(n, seg)
        b.cbranch(b.icmp_signed(">=", rem, _i64(SUM_RUN)), full, tail)
        b.position_at_end(full)  # whole runs of SUM_RUN floats
        em.run(seg, SUM_VECTORS, None)
        seg.add_incoming(b.add(seg, _i64(SUM_RUN)), b.block)
        b.branch(head)
        b.position_at_end(tail)  # the rest, 0 < rem < SUM_RUN: nv vectors, the last masked
        nv = b.sdiv(b.add(rem, _i64(SUM_FLOATS - 1)), _i64(SUM_FLOATS))
        in_last = b.sub(rem, b.mul(b.sub(nv, _i64(1)), _i64(SUM_FLOATS)))
        splat = b.insert_element(ir.Constant(_VSL, ir.Undefined), in_last, ir.Constant(_I32, 0))
        splat = b.shuffle_vector(splat, ir.Constant(_VSL, ir.Undefined),
                                 ir.Constant(_VSI, [0] * SUM_FLOATS))
        mask = b.icmp_signed("<", ir.Constant(_VSL, list(range(SUM_FLOATS))), splat)
        switch = b.switch(nv, out)
        for count in range(1, SUM_VECTORS + 1):
            blk = b.append_basic_block(f"run.tail{count}")
            switch.add_case(_i64(count), blk)
            b.position_at_end(blk)
            em.run(seg, count, mask)
            b.branch(out)
        b.position_at_end(out)
        return context.get_dummy_value()

    return sig, codegen


_V16F = ir.VectorType(_F32, 16)
_V16I = ir.VectorType(_I32, 16)
_V16L = ir.VectorType(_I64, 16)
_V16B = ir.VectorType(ir.IntType(1), 16)


def _lut_dot16(context, builder, signature, args):
    """:func:`lut_dot` on AVX-512, 16 entries a step: the 32-value codebook in two registers
    looked up by ``vpermi2ps`` on the codes, the 16 input values by one gather over the 16
    columns (one vector load of the columns, no scalar loads), one fused multiply-add.
    Measured on a 4096x9216 layer at 9% density, one thread, in cache: 4.9 G entries/s
    against 2.2 for the AVX2 step."""
    b = builder
    xp, cp, dp, tp = _array_data(context, builder, signature, args, range(4))
    mod = b.module
    ptrs_t = ir.VectorType(_F32.as_pointer(), 16)
    perm = cgutils.get_or_insert_function(
        mod, ir.FunctionType(_V16F, [_V16F, _V16I, _V16F]), "llvm.x86.avx512.vpermi2var.ps.512")
    fma = cgutils.get_or_insert_function(mod, ir.FunctionType(_V16F, [_V16F, _V16F, _V16F]),
                                         "llvm.fma.v16f32")
    gather = cgutils.get_or_insert_function(
        mod, ir.FunctionType(_V16F, [ptrs_t, _I32, _V16B, _V16F]),
        "llvm.masked.gather.v16f32.v16p0")
    regs = []
    for j in range(2):
        ld = b.load(b.bitcast(b.gep(tp, [ir.Constant(_I64, 16 * j)]), _V16F.as_pointer()))
        ld.align = 4
        regs.append(ld)
    col_vec = ir.VectorType(ir.IntType(signature.args[1].dtype.bitwidth), 16)
    code_vec = ir.VectorType(ir.IntType(8), 16)
    base = b.insert_element(ir.Constant(_V16L, ir.Undefined), b.ptrtoint(xp, _I64),
                            ir.Constant(_I32, 0))
    base = b.shuffle_vector(base, ir.Constant(_V16L, ir.Undefined),
                            ir.Constant(_V16I, [0] * 16))
    all_lanes = ir.Constant(_V16B, [1] * 16)
    zero = ir.Constant(_V16F, [0.0] * 16)

    def step(k, acc):
        dv = b.load(b.bitcast(b.gep(dp, [k]), code_vec.as_pointer()))
        dv.align = 1
        w = b.call(perm, [regs[0], b.zext(dv, _V16I), regs[1]])  # code bit 4 picks the register
        cv = b.load(b.bitcast(b.gep(cp, [k]), col_vec.as_pointer()))
        cv.align = 1
        cols = b.zext(cv, _V16L) if col_vec.element.width < 64 else cv
        addrs = b.inttoptr(b.add(base, b.shl(cols, ir.Constant(_V16L, [2] * 16))), ptrs_t)
        xv = b.call(gather, [addrs, ir.Constant(_I32, 4), all_lanes, zero])
        return b.call(fma, [w, xv, acc])

    return _summing_loop(b, args[4], args[5], _V16F, step)
