//go:build amd64 && !purego

#include "textflag.h"

// QUAD accumulates the level sums of 8 channels' weight words (at off(DI)) against the
// broadcast plane words Z12, Z13, Z14 into a, b, c.
#define QUAD(off, a, b, c) \
	VMOVDQU64 off(DI), Z15; \
	VPANDQ    Z15, Z12, Z16; \
	VPOPCNTQ  Z16, Z16; \
	VPADDQ    Z16, a, a; \
	VPANDQ    Z15, Z13, Z17; \
	VPOPCNTQ  Z17, Z17; \
	VPADDQ    Z17, b, b; \
	VPANDQ    Z15, Z14, Z18; \
	VPOPCNTQ  Z18, Z18; \
	VPADDQ    Z18, c, c

// ACC32 adds one window word (3 planes at SI) against 32 channels' weight words (at DI)
// to the per-plane sums Z0..Z11.
#define ACC32 \
	VPBROADCASTQ 0(SI), Z12; \
	VPBROADCASTQ 8(SI), Z13; \
	VPBROADCASTQ 16(SI), Z14; \
	QUAD(0, Z0, Z1, Z2); \
	QUAD(64, Z3, Z4, Z5); \
	QUAD(128, Z6, Z7, Z8); \
	QUAD(192, Z9, Z10, Z11)

// QUAD0 and FIRST32 are QUAD and ACC32 for a window's first word: they set the sums.
#define QUAD0(off, a, b, c) \
	VMOVDQU64 off(DI), Z15; \
	VPANDQ    Z15, Z12, a; \
	VPOPCNTQ  a, a; \
	VPANDQ    Z15, Z13, b; \
	VPOPCNTQ  b, b; \
	VPANDQ    Z15, Z14, c; \
	VPOPCNTQ  c, c

#define FIRST32 \
	VPBROADCASTQ 0(SI), Z12; \
	VPBROADCASTQ 8(SI), Z13; \
	VPBROADCASTQ 16(SI), Z14; \
	QUAD0(0, Z0, Z1, Z2); \
	QUAD0(64, Z3, Z4, Z5); \
	QUAD0(128, Z6, Z7, Z8); \
	QUAD0(192, Z9, Z10, Z11)

// REDUCE32_RET finishes levels32 and levels32s, whose frames agree: the 16-bit sums
// in Z3..Z11 are packed per plane (Z0, Z1, Z2), acc = total - 2(p0 + 2(p1 + 2 p2)) in
// 16 bits like the engine's MAC register, the levels count the thresholds at BX that
// acc reaches, are inverted by the mask at R8 and split into the planes p0, p1, p2.
#define REDUCE32_RET \
	VPSLLQ     $16, Z3, Z3; \
	VPSLLQ     $32, Z6, Z6; \
	VPTERNLOGQ $0xfe, Z6, Z3, Z0; \
	VPSLLQ     $48, Z9, Z9; \
	VPORQ      Z9, Z0, Z0; \
	VPSLLQ     $16, Z4, Z4; \
	VPSLLQ     $32, Z7, Z7; \
	VPTERNLOGQ $0xfe, Z7, Z4, Z1; \
	VPSLLQ     $48, Z10, Z10; \
	VPORQ      Z10, Z1, Z1; \
	VPSLLQ     $16, Z5, Z5; \
	VPSLLQ     $32, Z8, Z8; \
	VPTERNLOGQ $0xfe, Z8, Z5, Z2; \
	VPSLLQ     $48, Z11, Z11; \
	VPORQ      Z11, Z2, Z2; \
	VPADDW       Z2, Z2, Z2; \
	VPADDW       Z2, Z1, Z1; \
	VPADDW       Z1, Z1, Z1; \
	VPADDW       Z1, Z0, Z0; \
	VPADDW       Z0, Z0, Z0; \
	MOVQ         total+24(FP), AX; \
	VPBROADCASTW AX, Z20; \
	VPSUBW       Z0, Z20, Z20; \
	MOVQ         $1, AX; \
	VPBROADCASTW AX, Z31; \
	MOVQ         $2, AX; \
	VPBROADCASTW AX, Z30; \
	MOVQ         $4, AX; \
	VPBROADCASTW AX, Z29; \
	VPXORQ       Z21, Z21, Z21; \
	VPCMPW $5, 0(BX), Z20, K1; \
	VPADDW Z31, Z21, K1, Z21; \
	VPCMPW $5, 64(BX), Z20, K1; \
	VPADDW Z31, Z21, K1, Z21; \
	VPCMPW $5, 128(BX), Z20, K1; \
	VPADDW Z31, Z21, K1, Z21; \
	VPCMPW $5, 192(BX), Z20, K1; \
	VPADDW Z31, Z21, K1, Z21; \
	VPCMPW $5, 256(BX), Z20, K1; \
	VPADDW Z31, Z21, K1, Z21; \
	VPCMPW $5, 320(BX), Z20, K1; \
	VPADDW Z31, Z21, K1, Z21; \
	VPCMPW $5, 384(BX), Z20, K1; \
	VPADDW Z31, Z21, K1, Z21; \
	VPXORQ       (R8), Z21, Z21; \
	VPTESTMW     Z31, Z21, K1; \
	VPTESTMW     Z30, Z21, K2; \
	VPTESTMW     Z29, Z21, K3; \
	KMOVD        K1, AX; \
	MOVQ         AX, p0+48(FP); \
	KMOVD        K2, AX; \
	MOVQ         AX, p1+56(FP); \
	KMOVD        K3, AX; \
	MOVQ         AX, p2+64(FP); \
	VZEROUPPER; \
	RET

// func levels32(x *uint64, w *uint64, sf int, total int, thr *int16, inv *int16) (p0, p1, p2 uint64)
//
// Weights interleaved by interleaveRow: word q, vector i (8 channels), lane j holds
// channel 4j+i. Z0-Z11 accumulate plane b of vector i in Z(3i+b); the first window word
// writes them directly. The reduction then packs each plane's four vectors as 16-bit
// words (vector i shifted by 16i), which puts channel 4j+i in word 4j+i: the rest runs
// on 32 words in channel order, like levelsRow32.
TEXT ·levels32(SB), NOSPLIT, $0-72
	CMPB ·useVPOPCNT(SB), $0
	JEQ  levels32avx2
	MOVQ x+0(FP), SI
	MOVQ w+8(FP), DI
	MOVQ sf+16(FP), CX
	MOVQ thr+32(FP), BX
	MOVQ inv+40(FP), R8

	FIRST32
	ADDQ $24, SI
	ADDQ $256, DI
	DECQ CX
	JZ   reduce32

loop32:
	ACC32
	ADDQ $24, SI
	ADDQ $256, DI
	DECQ CX
	JNZ  loop32

reduce32:
	REDUCE32_RET

levels32avx2:
	JMP ·levels32AVX2(SB)

// CHAN adds the masked level sum of one channel's weight word (at off(DI)) against the
// plane words R8, R9, R10 to acc.
#define CHAN(off, acc) \
	MOVQ    off(DI), AX;    \
	MOVQ    AX, BX;         \
	ANDQ    R8, AX;         \
	ANDQ    R9, BX;         \
	POPCNTQ AX, AX;         \
	POPCNTQ BX, BX;         \
	LEAQ    (AX)(BX*2), AX; \
	MOVQ    off(DI), BX;    \
	ANDQ    R10, BX;        \
	POPCNTQ BX, BX;         \
	LEAQ    (AX)(BX*4), AX; \
	ADDQ    AX, acc

// func dotPopcnt4(x *uint64, w *uint64, sf int, d *[4]int64)
TEXT ·dotPopcnt4(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ w+8(FP), DI
	MOVQ sf+16(FP), CX
	XORQ R11, R11
	XORQ R12, R12
	XORQ R13, R13
	XORQ DX, DX

loop4:
	MOVQ 0(SI), R8
	MOVQ 8(SI), R9
	MOVQ 16(SI), R10
	CHAN(0, R11)
	CHAN(8, R12)
	CHAN(16, R13)
	CHAN(24, DX)
	ADDQ $32, DI
	ADDQ $24, SI
	DECQ CX
	JNZ  loop4

	MOVQ d+24(FP), DI
	MOVQ R11, 0(DI)
	MOVQ R12, 8(DI)
	MOVQ R13, 16(DI)
	MOVQ DX, 24(DI)
	RET

// Bit masks of every third bit from bit 0, 1 and 2 of a word (see recordPlanesPEXT).
#define MASK_A $0x9249249249249249
#define MASK_B $0x2492492492492492
#define MASK_C $0x4924924924924924

// func recordPlanesPEXT(dst *uint64, dstStride int, src *byte, srcStride int, n int)
//
// With the chunk's words W0, W1, W2 (stream bits 0-63, 64-127, 128-191):
// p0 = pext(W0, A) | pext(W1, C)<<22 | pext(W2, B)<<43
// p1 = pext(W0, B) | pext(W1, A)<<21 | pext(W2, C)<<43
// p2 = pext(W0, C) | pext(W1, B)<<21 | pext(W2, A)<<42
TEXT ·recordPlanesPEXT(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ dstStride+8(FP), R11
	MOVQ src+16(FP), SI
	MOVQ srcStride+24(FP), R12
	MOVQ n+32(FP), CX
	TESTQ CX, CX
	JLE  donepext
	MOVQ MASK_A, R13
	MOVQ MASK_B, R14
	MOVQ MASK_C, DX

looppext:
	MOVQ  0(SI), R8
	MOVQ  8(SI), R9
	MOVQ  16(SI), R10

	PEXTQ R13, R8, AX
	PEXTQ DX, R9, BX
	SHLQ  $22, BX
	ORQ   BX, AX
	PEXTQ R14, R10, BX
	SHLQ  $43, BX
	ORQ   BX, AX
	MOVQ  AX, 0(DI)

	PEXTQ R14, R8, AX
	PEXTQ R13, R9, BX
	SHLQ  $21, BX
	ORQ   BX, AX
	PEXTQ DX, R10, BX
	SHLQ  $43, BX
	ORQ   BX, AX
	MOVQ  AX, 8(DI)

	PEXTQ DX, R8, AX
	PEXTQ R14, R9, BX
	SHLQ  $21, BX
	ORQ   BX, AX
	PEXTQ R13, R10, BX
	SHLQ  $42, BX
	ORQ   BX, AX
	MOVQ  AX, 16(DI)

	ADDQ  R12, SI
	ADDQ  R11, DI
	DECQ  CX
	JNZ   looppext

donepext:
	RET

// func levelsRow32(x *uint64, tot *int, n int, w *uint64, thr *int16, inv *int16, dst *uint64, dstStride int, half int)
//
// levels32 for n pixels of a 3-word window (x: 9 words per pixel, tot: their level
// totals), with the 32 channels' weights held in Z0-Z11 (interleaved by interleaveRow:
// word q, register i, lane j holds channel 4j+i) and each pixel's plane bits stored as
// 32-bit halves (half 0 low, 1 high) of its three plane words at dst, dstStride bytes
// apart. Z12-Z23 are the plane accumulators (plane b, register i in Z12+4b+i); after the
// window, packing the four registers of a plane as 16-bit words (register i shifted by
// 16i) puts channel 4j+i in word 4j+i, so the rest runs on 32 words in channel order.
TEXT ·levelsRow32(SB), NOSPLIT, $0-72
	CMPB ·useVPOPCNT(SB), $0
	JEQ  levelsRow32avx2
	MOVQ x+0(FP), SI
	MOVQ tot+8(FP), R9
	MOVQ n+16(FP), CX
	MOVQ w+24(FP), DI
	MOVQ thr+32(FP), BX
	MOVQ inv+40(FP), R8
	MOVQ dst+48(FP), DX
	MOVQ dstStride+56(FP), R10
	MOVQ half+64(FP), AX
	LEAQ (DX)(AX*4), DX
	TESTQ CX, CX
	JLE  donerow
	VMOVDQU64 0(DI), Z0
	VMOVDQU64 64(DI), Z1
	VMOVDQU64 128(DI), Z2
	VMOVDQU64 192(DI), Z3
	VMOVDQU64 256(DI), Z4
	VMOVDQU64 320(DI), Z5
	VMOVDQU64 384(DI), Z6
	VMOVDQU64 448(DI), Z7
	VMOVDQU64 512(DI), Z8
	VMOVDQU64 576(DI), Z9
	VMOVDQU64 640(DI), Z10
	VMOVDQU64 704(DI), Z11
	MOVQ         $1, AX
	VPBROADCASTW AX, Z30
	MOVQ         $2, AX
	VPBROADCASTW AX, Z29
	MOVQ         $4, AX
	VPBROADCASTW AX, Z31

looprow:
	VPBROADCASTQ 0(SI), Z24
	VPBROADCASTQ 8(SI), Z25
	VPBROADCASTQ 16(SI), Z26
	VPANDQ Z0, Z24, Z12
	VPOPCNTQ Z12, Z12
	VPANDQ Z0, Z25, Z16
	VPOPCNTQ Z16, Z16
	VPANDQ Z0, Z26, Z20
	VPOPCNTQ Z20, Z20
	VPANDQ Z1, Z24, Z13
	VPOPCNTQ Z13, Z13
	VPANDQ Z1, Z25, Z17
	VPOPCNTQ Z17, Z17
	VPANDQ Z1, Z26, Z21
	VPOPCNTQ Z21, Z21
	VPANDQ Z2, Z24, Z14
	VPOPCNTQ Z14, Z14
	VPANDQ Z2, Z25, Z18
	VPOPCNTQ Z18, Z18
	VPANDQ Z2, Z26, Z22
	VPOPCNTQ Z22, Z22
	VPANDQ Z3, Z24, Z15
	VPOPCNTQ Z15, Z15
	VPANDQ Z3, Z25, Z19
	VPOPCNTQ Z19, Z19
	VPANDQ Z3, Z26, Z23
	VPOPCNTQ Z23, Z23
	VPBROADCASTQ 24(SI), Z24
	VPBROADCASTQ 32(SI), Z25
	VPBROADCASTQ 40(SI), Z26
	VPANDQ Z4, Z24, Z27
	VPOPCNTQ Z27, Z27
	VPADDQ Z27, Z12, Z12
	VPANDQ Z4, Z25, Z28
	VPOPCNTQ Z28, Z28
	VPADDQ Z28, Z16, Z16
	VPANDQ Z4, Z26, Z27
	VPOPCNTQ Z27, Z27
	VPADDQ Z27, Z20, Z20
	VPANDQ Z5, Z24, Z27
	VPOPCNTQ Z27, Z27
	VPADDQ Z27, Z13, Z13
	VPANDQ Z5, Z25, Z28
	VPOPCNTQ Z28, Z28
	VPADDQ Z28, Z17, Z17
	VPANDQ Z5, Z26, Z27
	VPOPCNTQ Z27, Z27
	VPADDQ Z27, Z21, Z21
	VPANDQ Z6, Z24, Z27
	VPOPCNTQ Z27, Z27
	VPADDQ Z27, Z14, Z14
	VPANDQ Z6, Z25, Z28
	VPOPCNTQ Z28, Z28
	VPADDQ Z28, Z18, Z18
	VPANDQ Z6, Z26, Z27
	VPOPCNTQ Z27, Z27
	VPADDQ Z27, Z22, Z22
	VPANDQ Z7, Z24, Z27
	VPOPCNTQ Z27, Z27
	VPADDQ Z27, Z15, Z15
	VPANDQ Z7, Z25, Z28
	VPOPCNTQ Z28, Z28
	VPADDQ Z28, Z19, Z19
	VPANDQ Z7, Z26, Z27
	VPOPCNTQ Z27, Z27
	VPADDQ Z27, Z23, Z23
	VPBROADCASTQ 48(SI), Z24
	VPBROADCASTQ 56(SI), Z25
	VPBROADCASTQ 64(SI), Z26
	VPANDQ Z8, Z24, Z27
	VPOPCNTQ Z27, Z27
	VPADDQ Z27, Z12, Z12
	VPANDQ Z8, Z25, Z28
	VPOPCNTQ Z28, Z28
	VPADDQ Z28, Z16, Z16
	VPANDQ Z8, Z26, Z27
	VPOPCNTQ Z27, Z27
	VPADDQ Z27, Z20, Z20
	VPANDQ Z9, Z24, Z27
	VPOPCNTQ Z27, Z27
	VPADDQ Z27, Z13, Z13
	VPANDQ Z9, Z25, Z28
	VPOPCNTQ Z28, Z28
	VPADDQ Z28, Z17, Z17
	VPANDQ Z9, Z26, Z27
	VPOPCNTQ Z27, Z27
	VPADDQ Z27, Z21, Z21
	VPANDQ Z10, Z24, Z27
	VPOPCNTQ Z27, Z27
	VPADDQ Z27, Z14, Z14
	VPANDQ Z10, Z25, Z28
	VPOPCNTQ Z28, Z28
	VPADDQ Z28, Z18, Z18
	VPANDQ Z10, Z26, Z27
	VPOPCNTQ Z27, Z27
	VPADDQ Z27, Z22, Z22
	VPANDQ Z11, Z24, Z27
	VPOPCNTQ Z27, Z27
	VPADDQ Z27, Z15, Z15
	VPANDQ Z11, Z25, Z28
	VPOPCNTQ Z28, Z28
	VPADDQ Z28, Z19, Z19
	VPANDQ Z11, Z26, Z27
	VPOPCNTQ Z27, Z27
	VPADDQ Z27, Z23, Z23

	// Pack each plane into words: Z12 (plane 0), Z16 (plane 1), Z20 (plane 2).
	VPSLLQ     $16, Z13, Z13
	VPSLLQ     $32, Z14, Z14
	VPTERNLOGQ $0xfe, Z14, Z13, Z12
	VPSLLQ     $48, Z15, Z15
	VPORQ      Z15, Z12, Z12
	VPSLLQ     $16, Z17, Z17
	VPSLLQ     $32, Z18, Z18
	VPTERNLOGQ $0xfe, Z18, Z17, Z16
	VPSLLQ     $48, Z19, Z19
	VPORQ      Z19, Z16, Z16
	VPSLLQ     $16, Z21, Z21
	VPSLLQ     $32, Z22, Z22
	VPTERNLOGQ $0xfe, Z22, Z21, Z20
	VPSLLQ     $48, Z23, Z23
	VPORQ      Z23, Z20, Z20

	// acc = total - 2(p0 + 2(p1 + 2 p2)), in 16 bits like the engine's MAC register.
	VPADDW       Z20, Z20, Z20
	VPADDW       Z20, Z16, Z16
	VPADDW       Z16, Z16, Z16
	VPADDW       Z16, Z12, Z12
	VPADDW       Z12, Z12, Z12
	MOVQ         (R9), AX
	VPBROADCASTW AX, Z24
	VPSUBW       Z12, Z24, Z12

	// Levels: count the thresholds reached, invert, split into the three planes.
	VPXORQ Z13, Z13, Z13
	VPCMPW $5, 0(BX), Z12, K1
	VPADDW Z30, Z13, K1, Z13
	VPCMPW $5, 64(BX), Z12, K1
	VPADDW Z30, Z13, K1, Z13
	VPCMPW $5, 128(BX), Z12, K1
	VPADDW Z30, Z13, K1, Z13
	VPCMPW $5, 192(BX), Z12, K1
	VPADDW Z30, Z13, K1, Z13
	VPCMPW $5, 256(BX), Z12, K1
	VPADDW Z30, Z13, K1, Z13
	VPCMPW $5, 320(BX), Z12, K1
	VPADDW Z30, Z13, K1, Z13
	VPCMPW $5, 384(BX), Z12, K1
	VPADDW Z30, Z13, K1, Z13
	VPXORQ   (R8), Z13, Z13
	VPTESTMW Z30, Z13, K1
	VPTESTMW Z29, Z13, K2
	VPTESTMW Z31, Z13, K3
	KMOVD    K1, AX
	MOVL     AX, 0(DX)
	KMOVD    K2, AX
	MOVL     AX, 8(DX)
	KMOVD    K3, AX
	MOVL     AX, 16(DX)

	ADDQ $72, SI
	ADDQ $8, R9
	ADDQ R10, DX
	DECQ CX
	JNZ  looprow

donerow:
	VZEROUPPER
	RET

levelsRow32avx2:
	JMP ·levelsRow32AVX2(SB)

// func levels32s(segs *seg32, nseg int, w *uint64, total int, thr *int16, inv *int16) (p0, p1, p2 uint64)
//
// levels32 over a window given as nseg segments (seg32: plane words x, byte offset
// woff of their first weight word past w, n >= 1 window words), read in place.
TEXT ·levels32s(SB), NOSPLIT, $0-72
	CMPB ·useVPOPCNT(SB), $0
	JEQ  levels32savx2
	MOVQ segs+0(FP), R9
	MOVQ nseg+8(FP), R10
	MOVQ w+16(FP), R11
	MOVQ thr+32(FP), BX
	MOVQ inv+40(FP), R8
	MOVQ 0(R9), SI
	MOVQ 8(R9), DI
	ADDQ R11, DI
	MOVQ 16(R9), CX

	FIRST32
	ADDQ $24, SI
	ADDQ $256, DI
	DECQ CX
	JZ   nextseg

loopseg:
	ACC32
	ADDQ $24, SI
	ADDQ $256, DI
	DECQ CX
	JNZ  loopseg

nextseg:
	ADDQ $24, R9
	DECQ R10
	JZ   reduceseg
	MOVQ 0(R9), SI
	MOVQ 8(R9), DI
	ADDQ R11, DI
	MOVQ 16(R9), CX
	JMP  loopseg

reduceseg:

	// Pack each plane into words: Z0 (plane 0), Z1 (plane 1), Z2 (plane 2).
	REDUCE32_RET

levels32savx2:
	JMP ·levels32sAVX2(SB)

// AVX2 kernels, for CPUs without AVX-512 VPOPCNTQ: levels32, levels32s and levelsRow32
// jump to them when useVPOPCNT is false (NewEngine only picks the 32-channel kernels
// then if useAVX2 is set). Popcounts are nibble lookups (VPSHUFB) of x_b & w, with
// tables already scaled by 2^b so that one byte accumulator per weight register holds
// sum_b 2^b popcount per byte: at most 56 per window word, so the byte accumulators are
// summed into 16-bit channel sums (VPSADBW) every 4 words. The channel sums wrap at 16
// bits like the engine's MAC register, so 16-bit fields are exact. A pass covers 16
// channels (4 of the 8 weight registers of a word: registers 4-7 first, then 0-3).
//
// Register use: Y0-Y3 byte accumulators, Y4 / Y15 the 16-bit sums of channels 0-15 /
// 16-31 (weight register k, qword l holds channel 16(k%2) + 4l + k/2, so register
// 2i+h goes to word i of qword l of the half h), Y5-Y7 the broadcast plane words, Y8-Y10
// the tables for planes 0, 1, 2, Y11 the nibble mask, Y12-Y14 temporaries.

DATA avx2Nib1<>+0(SB)/8, $0x0302020102010100
DATA avx2Nib1<>+8(SB)/8, $0x0403030203020201
DATA avx2Nib1<>+16(SB)/8, $0x0302020102010100
DATA avx2Nib1<>+24(SB)/8, $0x0403030203020201
GLOBL avx2Nib1<>(SB), RODATA|NOPTR, $32
DATA avx2Nib2<>+0(SB)/8, $0x0604040204020200
DATA avx2Nib2<>+8(SB)/8, $0x0806060406040402
DATA avx2Nib2<>+16(SB)/8, $0x0604040204020200
DATA avx2Nib2<>+24(SB)/8, $0x0806060406040402
GLOBL avx2Nib2<>(SB), RODATA|NOPTR, $32
DATA avx2Nib4<>+0(SB)/8, $0x0c08080408040400
DATA avx2Nib4<>+8(SB)/8, $0x100c0c080c080804
DATA avx2Nib4<>+16(SB)/8, $0x0c08080408040400
DATA avx2Nib4<>+24(SB)/8, $0x100c0c080c080804
GLOBL avx2Nib4<>(SB), RODATA|NOPTR, $32
DATA avx2Low4<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA avx2Low4<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA avx2Low4<>+16(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA avx2Low4<>+24(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL avx2Low4<>(SB), RODATA|NOPTR, $32

// AVX2_PLANE adds the scaled byte popcounts of the plane word xr and the weight word in
// Y12 to acc.
#define AVX2_PLANE(xr, lut, acc) \
	VPAND   Y12, xr, Y13; \
	VPSRLW  $4, Y13, Y14; \
	VPAND   Y11, Y13, Y13; \
	VPAND   Y11, Y14, Y14; \
	VPSHUFB Y13, lut, Y13; \
	VPSHUFB Y14, lut, Y14; \
	VPADDB  Y13, acc, acc; \
	VPADDB  Y14, acc, acc

// AVX2_REG adds one window word against 4 channels' weight words at off(DI) to acc.
#define AVX2_REG(off, acc) \
	VMOVDQU off(DI), Y12; \
	AVX2_PLANE(Y5, Y8, acc); \
	AVX2_PLANE(Y6, Y9, acc); \
	AVX2_PLANE(Y7, Y10, acc)

// AVX2_FLUSH adds the byte accumulators to the 16-bit channel sums and clears them.
#define AVX2_FLUSH \
	VPXOR   Y12, Y12, Y12; \
	VPSADBW Y12, Y0, Y0; \
	VPSADBW Y12, Y1, Y1; \
	VPSADBW Y12, Y2, Y2; \
	VPSADBW Y12, Y3, Y3; \
	VPSLLQ  $16, Y2, Y2; \
	VPSLLQ  $16, Y3, Y3; \
	VPADDW  Y0, Y4, Y4; \
	VPADDW  Y2, Y4, Y4; \
	VPADDW  Y1, Y15, Y15; \
	VPADDW  Y3, Y15, Y15; \
	VPXOR   Y0, Y0, Y0; \
	VPXOR   Y1, Y1, Y1; \
	VPXOR   Y2, Y2, Y2; \
	VPXOR   Y3, Y3, Y3

// AVX2_LEVELS computes the plane bits of 32 channels (AX, DX, R12 = p0, p1, p2) over the
// R10 segments (seg32) at R9, weights at R11, level total R13, thresholds at BX, invert
// masks at R8 (levels32s' layouts). Clobbers CX, SI, DI, R14.
#define AVX2_LEVELS \
	VMOVDQU avx2Nib1<>(SB), Y8; \
	VMOVDQU avx2Nib2<>(SB), Y9; \
	VMOVDQU avx2Nib4<>(SB), Y10; \
	VMOVDQU avx2Low4<>(SB), Y11; \
	VPXOR   Y0, Y0, Y0; \
	VPXOR   Y1, Y1, Y1; \
	VPXOR   Y2, Y2, Y2; \
	VPXOR   Y3, Y3, Y3; \
	VPXOR   Y4, Y4, Y4; \
	VPXOR   Y15, Y15, Y15; \
	MOVQ    $128, R14; \
avx2pass: \
	MOVQ R9, AX; \
	MOVQ R10, DX; \
	MOVQ $4, R12; \
avx2seg: \
	MOVQ 0(AX), SI; \
	MOVQ 8(AX), DI; \
	ADDQ R11, DI; \
	ADDQ R14, DI; \
	MOVQ 16(AX), CX; \
avx2word: \
	VPBROADCASTQ 0(SI), Y5; \
	VPBROADCASTQ 8(SI), Y6; \
	VPBROADCASTQ 16(SI), Y7; \
	AVX2_REG(0, Y0); \
	AVX2_REG(32, Y1); \
	AVX2_REG(64, Y2); \
	AVX2_REG(96, Y3); \
	ADDQ $24, SI; \
	ADDQ $256, DI; \
	DECQ R12; \
	JNZ  avx2noflush; \
	AVX2_FLUSH; \
	MOVQ $4, R12; \
avx2noflush: \
	DECQ CX; \
	JNZ  avx2word; \
	ADDQ $24, AX; \
	DECQ DX; \
	JNZ  avx2seg; \
	AVX2_FLUSH; \
	TESTQ R14, R14; \
	JZ   avx2reduce; \
	VPSLLQ $32, Y4, Y4; \
	VPSLLQ $32, Y15, Y15; \
	XORQ R14, R14; \
	JMP  avx2pass; \
avx2reduce: \
	VPADDW       Y4, Y4, Y4; \
	VPADDW       Y15, Y15, Y15; \
	VMOVQ        R13, X0; \
	VPBROADCASTW X0, Y0; \
	VPSUBW       Y4, Y0, Y4; \
	VPSUBW       Y15, Y0, Y15; \
	MOVQ         $7, AX; \
	VMOVQ        AX, X1; \
	VPBROADCASTW X1, Y1; \
	VMOVDQU      Y1, Y2; \
	AVX2_THR(0); \
	AVX2_THR(64); \
	AVX2_THR(128); \
	AVX2_THR(192); \
	AVX2_THR(256); \
	AVX2_THR(320); \
	AVX2_THR(384); \
	VPXOR        0(R8), Y1, Y1; \
	VPXOR        32(R8), Y2, Y2; \
	VPACKUSWB    Y2, Y1, Y1; \
	VPERMQ       $0xD8, Y1, Y1; \
	VPSLLW       $7, Y1, Y2; \
	VPMOVMSKB    Y2, AX; \
	VPSLLW       $6, Y1, Y2; \
	VPMOVMSKB    Y2, DX; \
	VPSLLW       $5, Y1, Y2; \
	VPMOVMSKB    Y2, R12

// AVX2_THR subtracts 1 from the levels (Y1: channels 0-15, Y2: 16-31, from 7) of the
// channels whose accumulator (Y4, Y15) is below their threshold at off(BX).
#define AVX2_THR(off) \
	VMOVDQU  off(BX), Y3; \
	VPCMPGTW Y4, Y3, Y3; \
	VPADDW   Y3, Y1, Y1; \
	VMOVDQU  off+32(BX), Y3; \
	VPCMPGTW Y15, Y3, Y3; \
	VPADDW   Y3, Y2, Y2

// func levels32sAVX2(segs *seg32, nseg int, w *uint64, total int, thr *int16, inv *int16) (p0, p1, p2 uint64)
TEXT ·levels32sAVX2(SB), NOSPLIT, $0-72
	MOVQ segs+0(FP), R9
	MOVQ nseg+8(FP), R10
	MOVQ w+16(FP), R11
	MOVQ total+24(FP), R13
	MOVQ thr+32(FP), BX
	MOVQ inv+40(FP), R8
	AVX2_LEVELS
	MOVQ AX, p0+48(FP)
	MOVQ DX, p1+56(FP)
	MOVQ R12, p2+64(FP)
	VZEROUPPER
	RET

// func levels32AVX2(x *uint64, w *uint64, sf int, total int, thr *int16, inv *int16) (p0, p1, p2 uint64)
//
// levels32sAVX2 on one segment, built in the frame.
TEXT ·levels32AVX2(SB), NOSPLIT, $24-72
	MOVQ x+0(FP), AX
	MOVQ AX, 0(SP)
	MOVQ $0, 8(SP)
	MOVQ sf+16(FP), AX
	MOVQ AX, 16(SP)
	LEAQ 0(SP), R9
	MOVQ $1, R10
	MOVQ w+8(FP), R11
	MOVQ total+24(FP), R13
	MOVQ thr+32(FP), BX
	MOVQ inv+40(FP), R8
	AVX2_LEVELS
	MOVQ AX, p0+48(FP)
	MOVQ DX, p1+56(FP)
	MOVQ R12, p2+64(FP)
	VZEROUPPER
	RET

// func levelsRow32AVX2(x *uint64, tot *int, n int, w *uint64, thr *int16, inv *int16, dst *uint64, dstStride int, half int)
//
// levelsRow32 as one 3-word segment per pixel. Frame: the segment (0-23), pixels left
// (24), the pixel's total pointer (32) and plane words (40).
TEXT ·levelsRow32AVX2(SB), NOSPLIT, $48-72
	MOVQ  n+16(FP), CX
	TESTQ CX, CX
	JLE   donerowavx2
	MOVQ  CX, 24(SP)
	MOVQ  x+0(FP), AX
	MOVQ  AX, 0(SP)
	MOVQ  $0, 8(SP)
	MOVQ  $3, 16(SP)
	MOVQ  tot+8(FP), AX
	MOVQ  AX, 32(SP)
	MOVQ  dst+48(FP), AX
	MOVQ  half+64(FP), CX
	LEAQ  (AX)(CX*4), AX
	MOVQ  AX, 40(SP)
	MOVQ  w+24(FP), R11
	MOVQ  thr+32(FP), BX
	MOVQ  inv+40(FP), R8

looprowavx2:
	LEAQ 0(SP), R9
	MOVQ $1, R10
	MOVQ 32(SP), AX
	MOVQ (AX), R13
	AVX2_LEVELS
	MOVQ 40(SP), CX
	MOVL AX, 0(CX)
	MOVL DX, 8(CX)
	MOVL R12, 16(CX)
	ADDQ dstStride+56(FP), CX
	MOVQ CX, 40(SP)
	ADDQ $72, 0(SP)
	ADDQ $8, 32(SP)
	DECQ 24(SP)
	JNZ  looprowavx2

donerowavx2:
	VZEROUPPER
	RET
