#include "textflag.h"

// The Go assembler has no NEON mnemonics: the instructions are WORDs, each with the GNU
// assembler's spelling beside it (arm-linux-gnueabihf-as produced the encodings). Sums
// live in q8-q11 (d16-d23) and counts in q12-q15, outside Go's float registers; q0-q7
// (Go's F0-F15, caller-saved) are scratch. The parts the kernels share are macros.

// ZERO_SUMS clears the 16 sums (q8-q11).
#define ZERO_SUMS \
	WORD	$0xf2c00050; /* vmov.i32 q8, #0 */ \
	WORD	$0xf2c02050; /* vmov.i32 q9, #0 */ \
	WORD	$0xf2c04050; /* vmov.i32 q10, #0 */ \
	WORD	$0xf2c06050  /* vmov.i32 q11, #0 */

// WEIGHTS_R0 loads the next 16 weights (R0 advances): q0-q3.
#define WEIGHTS_R0 \
	WORD	$0xf420028d; /* vld1.32 {d0-d3}, [r0]! */ \
	WORD	$0xf420428d  /* vld1.32 {d4-d7}, [r0]! */

// MLA(lane) adds the weights times one input: sums += q0-q3 * scalar. The product is
// rounded before the add, as Go's s += w*v does. Lanes: 0x48 d8[0], 0x68 d8[1], 0x49 d9[0].
#define MLA_D8_0 \
	WORD	$0xf3e00148; /* vmla.f32 q8, q0, d8[0] */ \
	WORD	$0xf3e22148; /* vmla.f32 q9, q1, d8[0] */ \
	WORD	$0xf3e44148; /* vmla.f32 q10, q2, d8[0] */ \
	WORD	$0xf3e66148  /* vmla.f32 q11, q3, d8[0] */
#define MLA_D8_1 \
	WORD	$0xf3e00168; /* vmla.f32 q8, q0, d8[1] */ \
	WORD	$0xf3e22168; /* vmla.f32 q9, q1, d8[1] */ \
	WORD	$0xf3e44168; /* vmla.f32 q10, q2, d8[1] */ \
	WORD	$0xf3e66168  /* vmla.f32 q11, q3, d8[1] */
#define MLA_D9_0 \
	WORD	$0xf3e00149; /* vmla.f32 q8, q0, d9[0] */ \
	WORD	$0xf3e22149; /* vmla.f32 q9, q1, d9[0] */ \
	WORD	$0xf3e44149; /* vmla.f32 q10, q2, d9[0] */ \
	WORD	$0xf3e66149  /* vmla.f32 q11, q3, d9[0] */

// STORE_SUMS_R3 stores the 16 sums at R3.
#define STORE_SUMS_R3 \
	WORD	$0xf443028d; /* vst1.32 {d16-d19}, [r3]! */ \
	WORD	$0xf443428f  /* vst1.32 {d20-d23}, [r3] */

// ZERO_COUNTS clears the 16 level counts (q12-q15).
#define ZERO_COUNTS \
	WORD	$0xf2c08050; /* vmov.i32 q12, #0 */ \
	WORD	$0xf2c0a050; /* vmov.i32 q13, #0 */ \
	WORD	$0xf2c0c050; /* vmov.i32 q14, #0 */ \
	WORD	$0xf2c0e050  /* vmov.i32 q15, #0 */

// STEP_R2 counts one quantizer step (16 bounds at R2, which advances): count += 1 where
// sum >= bound (VCGE.F32 compares as Go's >=; all ones is -1).
#define STEP_R2 \
	WORD	$0xf422028d; /* vld1.32 {d0-d3}, [r2]! */ \
	WORD	$0xf422428d; /* vld1.32 {d4-d7}, [r2]! */ \
	WORD	$0xf3008ec0; /* vcge.f32 q4, q8, q0 */ \
	WORD	$0xf302aec2; /* vcge.f32 q5, q9, q1 */ \
	WORD	$0xf304cec4; /* vcge.f32 q6, q10, q2 */ \
	WORD	$0xf306eec6; /* vcge.f32 q7, q11, q3 */ \
	WORD	$0xf36888c8; /* vsub.i32 q12, q12, q4 */ \
	WORD	$0xf36aa8ca; /* vsub.i32 q13, q13, q5 */ \
	WORD	$0xf36cc8cc; /* vsub.i32 q14, q14, q6 */ \
	WORD	$0xf36ee8ce  /* vsub.i32 q15, q15, q7 */

// PACK_R5_R3 packs the 16 counts into two 24-bit groups (shifts 0, 3, ..., 21 at R5; the
// fields do not overlap, so pairwise adds gather them) and stores them at R3.
#define PACK_R5_R3 \
	WORD	$0xf425028f; /* vld1.32 {d0-d3}, [r5] */ \
	WORD	$0xf3608468; /* vshl.u32 q12, q12, q0 */ \
	WORD	$0xf362a46a; /* vshl.u32 q13, q13, q1 */ \
	WORD	$0xf360c46c; /* vshl.u32 q14, q14, q0 */ \
	WORD	$0xf362e46e; /* vshl.u32 q15, q15, q1 */ \
	WORD	$0xf26888ea; /* vadd.i32 q12, q12, q13 */ \
	WORD	$0xf26cc8ee; /* vadd.i32 q14, q14, q15 */ \
	WORD	$0xf2688bb9; /* vpadd.i32 d24, d24, d25 */ \
	WORD	$0xf26ccbbd; /* vpadd.i32 d28, d28, d29 */ \
	WORD	$0xf2688bbc; /* vpadd.i32 d24, d24, d28 */ \
	WORD	$0xf443878f  /* vst1.32 {d24}, [r3] */

// func levels16NEON(w, col *float32, n int, bounds *[7][16]float32, out *[16]int32)
//
// For 16 outputs o: s[o] = sum over j < n of w[16*j+o] * col[j], in j order from zero,
// then out[o] = how many of bounds[k][o] (k = 0..6) are <= s[o].
TEXT ·levels16NEON(SB), NOSPLIT, $0-20
	MOVW	w+0(FP), R0
	MOVW	col+4(FP), R1
	MOVW	n+8(FP), R2
	ZERO_SUMS
dot:
	WEIGHTS_R0
	WORD	$0xf4a1880d // vld1.32 {d8[0]}, [r1]!   col[j]
	MLA_D8_0
	SUB.S	$1, R2
	BNE	dot
	MOVW	bounds+12(FP), R2
	MOVW	$7, R4
	ZERO_COUNTS
steps:
	STEP_R2
	SUB.S	$1, R4
	BNE	steps
	MOVW	out+16(FP), R3
	WORD	$0xf443828d // vst1.32 {d24-d27}, [r3]!
	WORD	$0xf443c28f // vst1.32 {d28-d31}, [r3]
	RET

// func dot16IdxNEON(w *float32, idx *int32, val *float32, n int, out *[16]float32)
//
// w holds 16 weights per input channel; out[o] = sum over i < n of
// w[16*idx[i]+o] * val[i], i in order (the last layer's nonzero channels).
TEXT ·dot16IdxNEON(SB), NOSPLIT, $0-20
	MOVW	w+0(FP), R0
	MOVW	idx+4(FP), R1
	MOVW	val+8(FP), R2
	MOVW	n+12(FP), R3
	ZERO_SUMS
	CMP	$0, R3
	BEQ	done
channel:
	MOVW.P	4(R1), R4
	ADD	R4<<6, R0, R5
	WORD	$0xf425028d // vld1.32 {d0-d3}, [r5]!   weights 0..7 of the channel
	WORD	$0xf425428f // vld1.32 {d4-d7}, [r5]    weights 8..15
	WORD	$0xf4a2880d // vld1.32 {d8[0]}, [r2]!   its value
	MLA_D8_0
	SUB.S	$1, R3
	BNE	channel
done:
	MOVW	out+16(FP), R3
	STORE_SUMS_R3
	RET

// func levels16PackNEON(w, col *float32, n int, bounds *[7][16]float32, shifts *[8]int32, out *[2]uint32)
//
// levels16NEON, then the 16 levels packed as the engine's record wants them: out[0]
// holds outputs 0..7 at bits 3i..3i+2, out[1] outputs 8..15.
TEXT ·levels16PackNEON(SB), NOSPLIT, $0-24
	MOVW	w+0(FP), R0
	MOVW	col+4(FP), R1
	MOVW	n+8(FP), R2
	ZERO_SUMS
pdot:
	WEIGHTS_R0
	WORD	$0xf4a1880d // vld1.32 {d8[0]}, [r1]!   col[j]
	MLA_D8_0
	SUB.S	$1, R2
	BNE	pdot
	MOVW	bounds+12(FP), R2
	MOVW	$7, R4
	ZERO_COUNTS
psteps:
	STEP_R2
	SUB.S	$1, R4
	BNE	psteps
	MOVW	shifts+16(FP), R5
	MOVW	out+20(FP), R3
	PACK_R5_R3
	RET

// func levels16RowNEON(w, win *float32, rowBytes, planeBytes int, bounds *[7][16]float32, shifts *[8]int32, dst *byte, dstStride, n, winStep int)
//
// levels16PackNEON for n 3x3 windows of three planes read in place, winStep bytes
// apart: win is the first window's top-left value in plane 0, rows rowBytes apart,
// planes planeBytes apart; the inputs go in (plane, row, column) order, as a gathered
// window would. Each pixel's two 24-bit groups are written as the first six bytes of its
// record (putPacked16's layout, bytes 6 and 7 zeroed) at dst, records dstStride bytes
// apart. The loop's state lives in the argument slots: all nine registers are the
// kernel's.
TEXT ·levels16RowNEON(SB), NOSPLIT, $0-40
row:
	MOVW	w+0(FP), R0
	MOVW	win+4(FP), R1
	MOVW	rowBytes+8(FP), R7
	MOVW	planeBytes+12(FP), R6
	ZERO_SUMS
	MOVW	$3, R2
rplane:
	MOVW	R1, R8
	MOVW	$3, R3
rrow:
	WORD	$0xf428878f // vld1.32 {d8}, [r8]       columns 0 and 1
	ADD	$8, R8, R5
	WORD	$0xf4a5980f // vld1.32 {d9[0]}, [r5]    column 2
	WEIGHTS_R0
	MLA_D8_0
	WEIGHTS_R0
	MLA_D8_1
	WEIGHTS_R0
	MLA_D9_0
	ADD	R7, R8, R8
	SUB.S	$1, R3
	BNE	rrow
	ADD	R6, R1, R1
	SUB.S	$1, R2
	BNE	rplane
	MOVW	bounds+16(FP), R2
	MOVW	$7, R4
	ZERO_COUNTS
rsteps:
	STEP_R2
	SUB.S	$1, R4
	BNE	rsteps
	MOVW	shifts+20(FP), R5
	MOVW	dst+24(FP), R3
	PACK_R5_R3
	MOVW	$0x04020100, R4 // bytes 0-2 of each group; index 8 reads as 0
	MOVW	$0x08080605, R5
	WORD	$0xec454b10 // vmov d0, r4, r5
	WORD	$0xf3b81880 // vtbl.8 d1, {d24}, d0
	WORD	$0xf403170f // vst1.8 {d1}, [r3]
	MOVW	dstStride+28(FP), R4
	ADD	R4, R3, R3
	MOVW	R3, dst+24(FP)
	MOVW	win+4(FP), R1
	MOVW	winStep+36(FP), R4
	ADD	R4, R1, R1
	MOVW	R1, win+4(FP)
	MOVW	n+32(FP), R4
	SUB.S	$1, R4
	MOVW	R4, n+32(FP)
	BNE	row
	RET
