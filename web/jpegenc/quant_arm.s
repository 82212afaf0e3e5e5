#include "textflag.h"

// func quantizeNEON(blk, recip *[64]int32)
//
// blk[k] = sign(blk[k]) * ((|blk[k]| * recip[k] + 1<<15) >> 16), four at a time. The Go
// assembler has no NEON mnemonics: the instructions are WORDs with the GNU assembler's
// spelling beside them (arm-linux-gnueabihf-as produced the encodings).
TEXT ·quantizeNEON(SB), NOSPLIT, $0-8
	MOVW	blk+0(FP), R0
	MOVW	recip+4(FP), R1
	MOVW	$16, R2
	WORD	$0xf3806250 // vmov.i32 q3, #0x8000    rounding
quant:
	WORD	$0xf4200a8f // vld1.32 {d0-d1}, [r0]   four coefficients
	WORD	$0xf4212a8d // vld1.32 {d2-d3}, [r1]!  their reciprocals
	WORD	$0xf2a14050 // vshr.s32 q2, q0, #31    -1 where negative
	WORD	$0xf3b90340 // vabs.s32 q0, q0
	WORD	$0xf2200952 // vmul.i32 q0, q0, q1
	WORD	$0xf2200846 // vadd.i32 q0, q0, q3
	WORD	$0xf2b00050 // vshr.s32 q0, q0, #16
	WORD	$0xf3000154 // veor q0, q0, q2          the sign back: (x ^ s) - s
	WORD	$0xf3200844 // vsub.i32 q0, q0, q2
	WORD	$0xf4000a8d // vst1.32 {d0-d1}, [r0]!
	SUB.S	$1, R2
	BNE	quant
	RET
