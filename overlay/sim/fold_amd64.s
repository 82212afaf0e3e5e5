//go:build amd64 && !purego

#include "textflag.h"

// The matrix-vector unit's neuron fold for 32 PEs (see foldLevels): per window word
// (three plane words at SI) every PE ANDs its weight word (32 words side by side at DI,
// the lockstep layout of Jam.wmem) with each plane and counts the bits; the counts are
// summed per PE and plane and combined as d = c0 + 2 c1 + 4 c2 at the end. The
// threshold stage then runs on the 16-bit MAC value total - 2d of each PE.

// PES8 adds the plane counts of the 8 PEs whose weight words are at off(DI) against
// the broadcast plane words Z12, Z13, Z14 to the qword sums c0, c1, c2.
#define PES8(off, c0, c1, c2) \
	VMOVDQU64 off(DI), Z15; \
	VPANDQ    Z12, Z15, Z16; \
	VPANDQ    Z13, Z15, Z17; \
	VPANDQ    Z14, Z15, Z18; \
	VPOPCNTQ  Z16, Z16; \
	VPOPCNTQ  Z17, Z17; \
	VPOPCNTQ  Z18, Z18; \
	VPADDQ    Z16, c0, c0; \
	VPADDQ    Z17, c1, c1; \
	VPADDQ    Z18, c2, c2

// DWORDS8 turns the plane sums c0, c1, c2 of 8 PEs into their d as 8 words in x.
#define DWORDS8(c0, c1, c2, x) \
	VPSLLQ  $1, c1, c1; \
	VPSLLQ  $2, c2, c2; \
	VPADDQ  c1, c0, c0; \
	VPADDQ  c2, c0, c0; \
	VPMOVQW c0, x

// TOTAL sets R13 to the level sum of the window (segments at x, as foldLevels takes
// them). Clobbers AX, CX, SI, R8, R9, R10.
#define TOTAL \
	XORQ R13, R13; \
	MOVQ x+0(FP), R8; \
	MOVQ segs+16(FP), R9; \
totseg: \
	MOVQ    R8, SI; \
	MOVQ    seg+8(FP), CX; \
totword: \
	POPCNTQ 0(SI), AX; \
	POPCNTQ 8(SI), R10; \
	LEAQ    (AX)(R10*2), AX; \
	POPCNTQ 16(SI), R10; \
	LEAQ    (AX)(R10*4), AX; \
	ADDQ    AX, R13; \
	ADDQ    $24, SI; \
	DECQ    CX; \
	JNZ     totword; \
	ADDQ    stride+24(FP), R8; \
	DECQ    R9; \
	JNZ     totseg

// REACHED adds 1 to the word levels in Z22 where the MAC value in Z21 reaches (signed,
// predicate 5: not less than) the 32 thresholds at off(BX); Z25 holds -1.
#define REACHED(off) \
	VPCMPW $5, off(BX), Z21, K1; \
	VPSUBW Z25, Z22, K1, Z22

// func fold32AVX512(x *uint64, seg, segs, stride int, w *uint64, folds int, thr *int16, lv *uint8)
TEXT ·fold32AVX512(SB), NOSPLIT, $0-64
	TOTAL
	VPBROADCASTW R13, Z24 // the window's level sum, in every word
	VPTERNLOGD   $0xff, Z25, Z25, Z25 // -1 in every word
	MOVQ         w+32(FP), DI
	MOVQ         folds+40(FP), R12
	MOVQ         thr+48(FP), BX
	MOVQ         lv+56(FP), DX

fold512:
	VPXORQ Z0, Z0, Z0
	VPXORQ Z1, Z1, Z1
	VPXORQ Z2, Z2, Z2
	VPXORQ Z3, Z3, Z3
	VPXORQ Z4, Z4, Z4
	VPXORQ Z5, Z5, Z5
	VPXORQ Z6, Z6, Z6
	VPXORQ Z7, Z7, Z7
	VPXORQ Z8, Z8, Z8
	VPXORQ Z9, Z9, Z9
	VPXORQ Z10, Z10, Z10
	VPXORQ Z11, Z11, Z11
	MOVQ   x+0(FP), R8
	MOVQ   segs+16(FP), R9

seg512:
	MOVQ R8, SI
	MOVQ seg+8(FP), CX

word512:
	VPBROADCASTQ 0(SI), Z12
	VPBROADCASTQ 8(SI), Z13
	VPBROADCASTQ 16(SI), Z14
	PES8(0, Z0, Z1, Z2)
	PES8(64, Z3, Z4, Z5)
	PES8(128, Z6, Z7, Z8)
	PES8(192, Z9, Z10, Z11)
	ADDQ $24, SI
	ADDQ $256, DI
	DECQ CX
	JNZ  word512
	ADDQ stride+24(FP), R8
	DECQ R9
	JNZ  seg512

	// d of the 32 PEs as words in PE order in Z20; the MAC value total - 2d in Z21
	// (word arithmetic wraps like the 16-bit register).
	DWORDS8(Z0, Z1, Z2, X20)
	DWORDS8(Z3, Z4, Z5, X21)
	DWORDS8(Z6, Z7, Z8, X22)
	DWORDS8(Z9, Z10, Z11, X23)
	VINSERTI32X4 $1, X21, Z20, Z20
	VINSERTI32X4 $2, X22, Z20, Z20
	VINSERTI32X4 $3, X23, Z20, Z20
	VPADDW       Z20, Z20, Z20
	VPSUBW       Z20, Z24, Z21

	// Level: one more for each threshold row the MAC value reaches (signed), then the
	// invert row's mask (7 or 0) XORed in.
	VPXORQ  Z22, Z22, Z22
	REACHED(0)
	REACHED(64)
	REACHED(128)
	REACHED(192)
	REACHED(256)
	REACHED(320)
	REACHED(384)
	VPXORQ  448(BX), Z22, Z22
	VPMOVWB Z22, Y0
	VMOVDQU Y0, (DX)
	ADDQ    $512, BX
	ADDQ    $32, DX
	DECQ    R12
	JNZ     fold512
	VZEROUPPER
	RET

// Constants of the AVX2 fold: bit counts of the 16 nibbles (both lanes), the low-nibble
// mask, the dword indices of the low halves of 4 qwords, and the byte indices of the
// low bytes of 4 dwords (per lane; 0x80 clears).
DATA nibbleBits<>+0(SB)/8, $0x0302020102010100
DATA nibbleBits<>+8(SB)/8, $0x0403030203020201
DATA nibbleBits<>+16(SB)/8, $0x0302020102010100
DATA nibbleBits<>+24(SB)/8, $0x0403030203020201
GLOBL nibbleBits<>(SB), RODATA|NOPTR, $32

DATA lowNibbles<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA lowNibbles<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA lowNibbles<>+16(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA lowNibbles<>+24(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL lowNibbles<>(SB), RODATA|NOPTR, $32

DATA qwordLows<>+0(SB)/8, $0x0000000200000000
DATA qwordLows<>+8(SB)/8, $0x0000000600000004
DATA qwordLows<>+16(SB)/8, $0x0000000200000000
DATA qwordLows<>+24(SB)/8, $0x0000000600000004
GLOBL qwordLows<>(SB), RODATA|NOPTR, $32

DATA dwordLows<>+0(SB)/8, $0x808080800c080400
DATA dwordLows<>+8(SB)/8, $0x8080808080808080
DATA dwordLows<>+16(SB)/8, $0x808080800c080400
DATA dwordLows<>+24(SB)/8, $0x8080808080808080
GLOBL dwordLows<>(SB), RODATA|NOPTR, $32

// BYTEBITS sets t to the bit count of each of its bytes (u is clobbered).
#define BYTEBITS(t, u) \
	VPSRLW  $4, t, u; \
	VPAND   Y9, t, t; \
	VPAND   Y9, u, u; \
	VPSHUFB t, Y8, t; \
	VPSHUFB u, Y8, u; \
	VPADDB  u, t, t

// PES4 adds, per byte, 4 c2 + 2 c1 + c0 of the 4 PEs whose weight words are at off(DI)
// against the broadcast plane words Y10, Y11, Y12 to acc.
#define PES4(off, acc) \
	VMOVDQU off(DI), Y13; \
	VPAND   Y12, Y13, Y14; \
	BYTEBITS(Y14, Y15); \
	VPADDB  Y14, Y14, Y14; \
	VPADDB  Y14, Y14, Y14; \
	VPADDB  Y14, acc, acc; \
	VPAND   Y11, Y13, Y14; \
	BYTEBITS(Y14, Y15); \
	VPADDB  Y14, Y14, Y14; \
	VPADDB  Y14, acc, acc; \
	VPAND   Y10, Y13, Y14; \
	BYTEBITS(Y14, Y15); \
	VPADDB  Y14, acc, acc

// BELOW subtracts 1 from the dword levels in Y2 where the MAC value in Y1 is below
// the 8 thresholds at toff(BX).
#define BELOW(toff) \
	VPMOVSXWD toff(BX), Y3; \
	VPCMPGTD  Y1, Y3, Y3; \
	VPADDD    Y3, Y2, Y2

// LEVELS8 stores at loff(DX) the levels of the 8 PEs whose d are the dwords at
// soff(SP), with their thresholds and invert masks from the rows at toff(BX) (row t
// 64t bytes further), the total in Y8 and 7 in Y9.
#define LEVELS8(soff, toff, loff) \
	VMOVDQU   soff(SP), Y1; \
	VPADDD    Y1, Y1, Y1; \
	VPSUBD    Y1, Y8, Y1; \
	VPSLLD    $16, Y1, Y1; \
	VPSRAD    $16, Y1, Y1; \
	VMOVDQU   Y9, Y2; \
	BELOW(toff); \
	BELOW(64+toff); \
	BELOW(128+toff); \
	BELOW(192+toff); \
	BELOW(256+toff); \
	BELOW(320+toff); \
	BELOW(384+toff); \
	VPMOVSXWD 448+toff(BX), Y3; \
	VPXOR     Y3, Y2, Y2; \
	VPSHUFB   Y10, Y2, Y2; \
	VEXTRACTI128 $1, Y2, X3; \
	MOVQ      X2, AX; \
	MOVQ      X3, CX; \
	MOVL      AX, loff(DX); \
	MOVL      CX, 4+loff(DX)

// FOLD4 adds the byte sums Y0..Y3 into the qword sums Y4..Y7 (VPSADBW against zero)
// and clears them.
#define FOLD4 \
	VPXOR   Y13, Y13, Y13; \
	VPSADBW Y13, Y0, Y0; \
	VPSADBW Y13, Y1, Y1; \
	VPSADBW Y13, Y2, Y2; \
	VPSADBW Y13, Y3, Y3; \
	VPADDQ  Y0, Y4, Y4; \
	VPADDQ  Y1, Y5, Y5; \
	VPADDQ  Y2, Y6, Y6; \
	VPADDQ  Y3, Y7, Y7; \
	VPXOR   Y0, Y0, Y0; \
	VPXOR   Y1, Y1, Y1; \
	VPXOR   Y2, Y2, Y2; \
	VPXOR   Y3, Y3, Y3

// func fold32AVX2(x *uint64, seg, segs, stride int, w *uint64, folds int, thr *int16, lv *uint8)
//
// Per fold, two passes of 16 PEs. Byte counts accumulate up to four window words, in
// one segment or across them (at most 4 * 56 per byte), before VPSADBW folds them into
// qword sums; each pass leaves its 16 d as dwords in the frame, and the threshold stage
// runs on 8 PEs at a time in dwords.
TEXT ·fold32AVX2(SB), NOSPLIT, $128-64
	TOTAL
	MOVQ w+32(FP), R14
	MOVQ folds+40(FP), R12
	MOVQ thr+48(FP), BX
	MOVQ lv+56(FP), DX

fold2:
	VMOVDQU nibbleBits<>(SB), Y8
	VMOVDQU lowNibbles<>(SB), Y9
	XORQ    R11, R11 // pass offset in a weight row: 0, then 128 bytes

pass:
	LEAQ  (R14)(R11*1), DI
	MOVQ  x+0(FP), R8
	MOVQ  segs+16(FP), R9
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	VPXOR Y4, Y4, Y4
	VPXOR Y5, Y5, Y5
	VPXOR Y6, Y6, Y6
	VPXOR Y7, Y7, Y7
	MOVQ  $4, R10 // window words until the byte sums are folded (across segments)

seg2:
	MOVQ R8, SI
	MOVQ seg+8(FP), CX

word2:
	VPBROADCASTQ 0(SI), Y10
	VPBROADCASTQ 8(SI), Y11
	VPBROADCASTQ 16(SI), Y12
	PES4(0, Y0)
	PES4(32, Y1)
	PES4(64, Y2)
	PES4(96, Y3)
	ADDQ $24, SI
	ADDQ $256, DI
	DECQ R10
	JNZ  next2
	FOLD4
	MOVQ $4, R10

next2:
	DECQ CX
	JNZ  word2
	ADDQ stride+24(FP), R8
	DECQ R9
	JNZ  seg2
	FOLD4

	// The pass's 16 qword sums (each < 2^32) to dwords in PE order at R11/2(SP).
	VMOVDQU     qwordLows<>(SB), Y0
	VPERMD      Y4, Y0, Y4
	VPERMD      Y5, Y0, Y5
	VINSERTI128 $1, X5, Y4, Y4
	VPERMD      Y6, Y0, Y6
	VPERMD      Y7, Y0, Y7
	VINSERTI128 $1, X7, Y6, Y6
	MOVQ        R11, AX
	SHRQ        $1, AX
	VMOVDQU     Y4, 0(SP)(AX*1)
	VMOVDQU     Y6, 32(SP)(AX*1)
	ADDQ        $128, R11
	CMPQ        R11, $256
	JLT         pass

	MOVQ         R13, X8
	VPBROADCASTD X8, Y8
	MOVQ         $7, AX // the level before the thresholds: 7 - #(t > acc)
	MOVQ         AX, X9
	VPBROADCASTD X9, Y9
	VMOVDQU      dwordLows<>(SB), Y10
	LEVELS8(0, 0, 0)
	LEVELS8(32, 16, 8)
	LEVELS8(64, 32, 16)
	LEVELS8(96, 48, 24)
	ADDQ         $512, BX
	ADDQ         $32, DX
	MOVQ         seg+8(FP), AX
	IMULQ        segs+16(FP), AX
	SHLQ         $8, AX
	ADDQ         AX, R14 // the next fold's weights: seg*segs rows of 256 bytes
	DECQ         R12
	JNZ          fold2
	VZEROUPPER
	RET

// Constants of recordPlanes512: the VPERMB indices that put record bytes 3j..3j+7 in
// qword j (record bits 24j..24j+63, which hold lanes 8j..8j+7), and per plane b the
// VPSHUFBITQMB bit indices 3i+b of lane 8j+i within its qword.
DATA lanesBytes<>+0(SB)/8, $0x0706050403020100
DATA lanesBytes<>+8(SB)/8, $0x0a09080706050403
DATA lanesBytes<>+16(SB)/8, $0x0d0c0b0a09080706
DATA lanesBytes<>+24(SB)/8, $0x100f0e0d0c0b0a09
DATA lanesBytes<>+32(SB)/8, $0x131211100f0e0d0c
DATA lanesBytes<>+40(SB)/8, $0x161514131211100f
DATA lanesBytes<>+48(SB)/8, $0x1918171615141312
DATA lanesBytes<>+56(SB)/8, $0x1c1b1a1918171615
GLOBL lanesBytes<>(SB), RODATA|NOPTR, $64

DATA planeBits0<>+0(SB)/8, $0x15120f0c09060300
DATA planeBits0<>+8(SB)/8, $0x15120f0c09060300
DATA planeBits0<>+16(SB)/8, $0x15120f0c09060300
DATA planeBits0<>+24(SB)/8, $0x15120f0c09060300
DATA planeBits0<>+32(SB)/8, $0x15120f0c09060300
DATA planeBits0<>+40(SB)/8, $0x15120f0c09060300
DATA planeBits0<>+48(SB)/8, $0x15120f0c09060300
DATA planeBits0<>+56(SB)/8, $0x15120f0c09060300
GLOBL planeBits0<>(SB), RODATA|NOPTR, $64

DATA planeBits1<>+0(SB)/8, $0x1613100d0a070401
DATA planeBits1<>+8(SB)/8, $0x1613100d0a070401
DATA planeBits1<>+16(SB)/8, $0x1613100d0a070401
DATA planeBits1<>+24(SB)/8, $0x1613100d0a070401
DATA planeBits1<>+32(SB)/8, $0x1613100d0a070401
DATA planeBits1<>+40(SB)/8, $0x1613100d0a070401
DATA planeBits1<>+48(SB)/8, $0x1613100d0a070401
DATA planeBits1<>+56(SB)/8, $0x1613100d0a070401
GLOBL planeBits1<>(SB), RODATA|NOPTR, $64

DATA planeBits2<>+0(SB)/8, $0x1714110e0b080502
DATA planeBits2<>+8(SB)/8, $0x1714110e0b080502
DATA planeBits2<>+16(SB)/8, $0x1714110e0b080502
DATA planeBits2<>+24(SB)/8, $0x1714110e0b080502
DATA planeBits2<>+32(SB)/8, $0x1714110e0b080502
DATA planeBits2<>+40(SB)/8, $0x1714110e0b080502
DATA planeBits2<>+48(SB)/8, $0x1714110e0b080502
DATA planeBits2<>+56(SB)/8, $0x1714110e0b080502
GLOBL planeBits2<>(SB), RODATA|NOPTR, $64

// func recordPlanes512(dst *uint64, src *byte, pixels, groups, srcStride, dstStride int)
//
// For each of pixels records (srcStride bytes apart) and each of its first groups
// 64-lane groups (24 bytes each): the group's three plane words, at dst (dstStride
// bytes apart per pixel). The masked load reads only the group's 24 bytes.
TEXT ·recordPlanes512(SB), NOSPLIT, $0-48
	MOVQ      dst+0(FP), DI
	MOVQ      src+8(FP), SI
	MOVQ      pixels+16(FP), CX
	MOVQ      $0xffffff, AX
	KMOVQ     AX, K7
	VMOVDQU64 lanesBytes<>(SB), Z1
	VMOVDQU64 planeBits0<>(SB), Z2
	VMOVDQU64 planeBits1<>(SB), Z3
	VMOVDQU64 planeBits2<>(SB), Z4

pixel512:
	MOVQ groups+24(FP), DX
	MOVQ SI, R8
	MOVQ DI, R9

group512:
	VMOVDQU8.Z   (R8), K7, Z0
	VPERMB       Z0, Z1, Z5
	VPSHUFBITQMB Z2, Z5, K1
	VPSHUFBITQMB Z3, Z5, K2
	VPSHUFBITQMB Z4, Z5, K3
	KMOVQ        K1, 0(R9)
	KMOVQ        K2, 8(R9)
	KMOVQ        K3, 16(R9)
	ADDQ         $24, R8
	ADDQ         $24, R9
	DECQ         DX
	JNZ          group512
	ADDQ         srcStride+32(FP), SI
	ADDQ         dstStride+40(FP), DI
	DECQ         CX
	JNZ          pixel512
	VZEROUPPER
	RET
