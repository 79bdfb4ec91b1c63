"""AVX2 piece of the batch-1 sparse dot product: the codebook lives in vector registers.

A scalar loop spends four loads on each stored entry (its code, its column, the codebook value
and the input value) and is bound by the CPU's load ports, not by memory. :func:`lut_dot` takes
eight entries at a time: their eight codes in one load, the values looked up in a codebook of up
to :data:`LUT_SIZE` floats held in four registers (``vpermps`` per register, two blends on code
bits 3 and 4), the eight input values by scalar loads (AVX2 gathers are slower on the CPUs
measured), one fused multiply-add into a vector of partial sums. That leaves the column and input
loads, a little over two loads per entry.

Numba has no vector types, so the loop is written in LLVM IR (a numba ``intrinsic``). It is used
only where :data:`AVX2` is true: callers test it before the call, and numba drops a branch on a
false module constant before code generation, so nothing here reaches LLVM on other CPUs.
Numba's on-disk cache is keyed by the CPU's name and features, so a cached kernel built here is
not loaded on a CPU without AVX2.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

#: Codebook values the register lookup holds (codes 0..31); larger codebooks use the scalar loop.
LUT_SIZE = 32

#: Entries per step of :func:`lut_dot`: ``end - k`` must be a multiple of it.
LUT_STEP = 8


def _host_has_avx2():
    try:
        import llvmlite.binding as llvm

        feats = llvm.get_host_cpu_features()
        return bool(feats.get("avx2", False)) and bool(feats.get("fma", False))
    except Exception:  # no feature query on this platform: take the portable path
        return False


#: True when this CPU runs the register-lookup kernel (x86-64 with AVX2 and FMA).
AVX2 = _host_has_avx2()

_F32 = ir.FloatType()
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_V8F = ir.VectorType(_F32, 8)
_V8I = ir.VectorType(_I32, 8)


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
        xa, ca, da, ta, k0, kend = args

        def data(i, v):
            return cgutils.create_struct_proxy(signature.args[i])(context, builder, value=v).data

        xp, cp, dp, tp = data(0, xa), data(1, ca), data(2, da), data(3, ta)
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

        pre = builder.block
        header = builder.append_basic_block("lut.header")
        body = builder.append_basic_block("lut.body")
        done = builder.append_basic_block("lut.done")
        builder.branch(header)

        builder.position_at_end(header)
        k = builder.phi(_I64)
        k.add_incoming(k0, pre)
        acc = builder.phi(_V8F)
        acc.add_incoming(ir.Constant(_V8F, [0.0] * 8), pre)
        builder.cbranch(builder.icmp_unsigned("<", k, kend), body, done)

        builder.position_at_end(body)
        dv = builder.load(builder.bitcast(builder.gep(dp, [k]), code_vec.as_pointer()))
        dv.align = 1
        code = builder.zext(dv, _V8I)
        xv = ir.Constant(_V8F, ir.Undefined)
        for j in range(8):  # scalar column loads: cheaper here than a vector load and extracts
            col = builder.load(builder.gep(cp, [builder.add(k, ir.Constant(_I64, j))]))
            col = builder.zext(col, _I64) if col.type.width < 64 else col
            v = builder.load(builder.gep(xp, [col]))
            v.align = 4
            xv = builder.insert_element(xv, v, ir.Constant(_I32, j))
        p = [builder.call(permps, [regs[j], code]) for j in range(4)]  # by code bits 0..2
        hi3 = builder.icmp_unsigned("!=", builder.and_(code, bit3), zero8)
        hi4 = builder.icmp_unsigned("!=", builder.and_(code, bit4), zero8)
        w = builder.select(hi4, builder.select(hi3, p[3], p[2]), builder.select(hi3, p[1], p[0]))
        nacc = builder.call(fma, [w, xv, acc])
        k.add_incoming(builder.add(k, ir.Constant(_I64, 8)), body)
        acc.add_incoming(nacc, body)
        builder.branch(header)

        builder.position_at_end(done)
        s = builder.extract_element(acc, ir.Constant(_I32, 0))
        for j in range(1, 8):
            s = builder.fadd(s, builder.extract_element(acc, ir.Constant(_I32, j)))
        return s

    return sig, codegen
