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

// func lerpColsNEON(dst, src *float32, ix *int32, rx, dx *float32, n int)
//
// dst[c] = rx[c]*src[ix[c]] + dx[c]*src[ix[c]+1] for c < n (a multiple of 4), each
// product rounded before the add: the pairs are loaded whole, then unzipped.
TEXT ·lerpColsNEON(SB), NOSPLIT, $0-24
	MOVW	dst+0(FP), R0
	MOVW	src+4(FP), R1
	MOVW	ix+8(FP), R2
	MOVW	rx+12(FP), R3
	MOVW	dx+16(FP), R4
	MOVW	n+20(FP), R6
lerp:
	MOVW.P	4(R2), R7
	ADD	R7<<2, R1, R5
	WORD	$0xf425078f // vld1.32 {d0}, [r5]    src[ix], src[ix+1] of column c
	MOVW.P	4(R2), R7
	ADD	R7<<2, R1, R5
	WORD	$0xf425178f // vld1.32 {d1}, [r5]    column c+1
	MOVW.P	4(R2), R7
	ADD	R7<<2, R1, R5
	WORD	$0xf425278f // vld1.32 {d2}, [r5]    column c+2
	MOVW.P	4(R2), R7
	ADD	R7<<2, R1, R5
	WORD	$0xf425378f // vld1.32 {d3}, [r5]    column c+3
	WORD	$0xf3ba0142 // vuzp.32 q0, q1        q0 = left values, q1 = right values
	WORD	$0xf4234a8d // vld1.32 {d4-d5}, [r3]!  rx
	WORD	$0xf4246a8d // vld1.32 {d6-d7}, [r4]!  dx
	WORD	$0xf3048d50 // vmul.f32 q4, q2, q0
	WORD	$0xf2068d52 // vmla.f32 q4, q3, q1
	WORD	$0xf4008a8d // vst1.32 {d8-d9}, [r0]!
	SUB.S	$4, R6
	BNE	lerp
	RET
