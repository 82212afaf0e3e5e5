//go:build amd64 && !purego && !goexperiment.simd

#include "textflag.h"

// One k step of the 4x24 tile: three B vectors (24 columns) times the four A values of
// the step, broadcast, into the accumulators Y0-Y11 (row r in Y(3r)..Y(3r+2)).
#define STEP(ao, bo) \
	VMOVUPS      bo(DI), Y12;       \
	VMOVUPS      bo+32(DI), Y13;    \
	VMOVUPS      bo+64(DI), Y14;    \
	VBROADCASTSS ao(SI), Y15;       \
	VFMADD231PS  Y12, Y15, Y0;      \
	VFMADD231PS  Y13, Y15, Y1;      \
	VFMADD231PS  Y14, Y15, Y2;      \
	VBROADCASTSS ao+4(SI), Y15;     \
	VFMADD231PS  Y12, Y15, Y3;      \
	VFMADD231PS  Y13, Y15, Y4;      \
	VFMADD231PS  Y14, Y15, Y5;      \
	VBROADCASTSS ao+8(SI), Y15;     \
	VFMADD231PS  Y12, Y15, Y6;      \
	VFMADD231PS  Y13, Y15, Y7;      \
	VFMADD231PS  Y14, Y15, Y8;      \
	VBROADCASTSS ao+12(SI), Y15;    \
	VFMADD231PS  Y12, Y15, Y9;      \
	VFMADD231PS  Y13, Y15, Y10;     \
	VFMADD231PS  Y14, Y15, Y11

// ROW applies the flags to one row (accumulators x, y, z; C row at ptr; bias at boff(BX))
// and stores it.
#define ROW(x, y, z, ptr, boff) \
	TESTQ        $1, R9;            \
	JZ           4(PC);             \
	VADDPS       (ptr), x, x;       \
	VADDPS       32(ptr), y, y;     \
	VADDPS       64(ptr), z, z;     \
	TESTQ        $2, R9;            \
	JZ           5(PC);             \
	VBROADCASTSS boff(BX), Y12;     \
	VADDPS       Y12, x, x;         \
	VADDPS       Y12, y, y;         \
	VADDPS       Y12, z, z;         \
	TESTQ        $4, R9;            \
	JZ           7(PC);             \
	VMULPS       x, Y15, Y12;       \
	VMAXPS       Y12, x, x;         \
	VMULPS       y, Y15, Y13;       \
	VMAXPS       Y13, y, y;         \
	VMULPS       z, Y15, Y14;       \
	VMAXPS       Y14, z, z;         \
	VMOVUPS      x, (ptr);          \
	VMOVUPS      y, 32(ptr);        \
	VMOVUPS      z, 64(ptr)

// func gemmKernel4x24(kc int, a, b, c *float32, ldc int, flags int, bias *float32, slope float32)
TEXT ·gemmKernel4x24(SB), NOSPLIT, $0-60
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ c+24(FP), DX
	MOVQ ldc+32(FP), R8
	MOVQ flags+40(FP), R9
	MOVQ bias+48(FP), BX
	SHLQ $2, R8

	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11

	MOVQ CX, AX
	SHRQ $2, AX
	JZ   tail

loop4:
	STEP(0, 0)
	STEP(16, 96)
	STEP(32, 192)
	STEP(48, 288)
	ADDQ $64, SI
	ADDQ $384, DI
	DECQ AX
	JNZ  loop4

tail:
	ANDQ $3, CX
	JZ   store

loop1:
	STEP(0, 0)
	ADDQ $16, SI
	ADDQ $96, DI
	DECQ CX
	JNZ  loop1

store:
	VBROADCASTSS slope+56(FP), Y15
	ROW(Y0, Y1, Y2, DX, 0)
	ADDQ R8, DX
	ROW(Y3, Y4, Y5, DX, 4)
	ADDQ R8, DX
	ROW(Y6, Y7, Y8, DX, 8)
	ADDQ R8, DX
	ROW(Y9, Y10, Y11, DX, 12)
	VZEROUPPER
	RET
