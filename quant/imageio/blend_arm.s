#include "textflag.h"

// func blendRowsNEON(dst, top, bottom *float32, n int, a, b float32)
//
// dst[i] = a*top[i] + b*bottom[i], each product rounded before the add; n a multiple of
// 4. The Go assembler has no NEON mnemonics: the instructions are WORDs with the GNU
// assembler's spelling beside them (arm-linux-gnueabihf-as produced the encodings).
TEXT ·blendRowsNEON(SB), NOSPLIT, $0-24
	MOVW	dst+0(FP), R0
	MOVW	top+4(FP), R1
	MOVW	bottom+8(FP), R2
	MOVW	n+12(FP), R3
	MOVW	$a+16(FP), R4
	MOVW	$b+20(FP), R5
	WORD	$0xf4a4880f // vld1.32 {d8[0]}, [r4]   a
	WORD	$0xf4a5888f // vld1.32 {d8[1]}, [r5]   b
loop:
	WORD	$0xf4210a8d // vld1.32 {d0-d1}, [r1]!  top[i..i+3]
	WORD	$0xf4222a8d // vld1.32 {d2-d3}, [r2]!  bottom[i..i+3]
	WORD	$0xf3a04948 // vmul.f32 q2, q0, d8[0]
	WORD	$0xf3a24168 // vmla.f32 q2, q1, d8[1]
	WORD	$0xf4004a8d // vst1.32 {d4-d5}, [r0]!
	SUB.S	$4, R3
	BNE	loop
	RET
