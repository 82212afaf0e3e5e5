//go:build amd64 && !purego && !goexperiment.simd

#include "textflag.h"

// ACT adds the bias (Y14) to accumulator x and applies max(x, slope*x) (slope in Y15).
#define ACT(x, tmp) \
	VADDPS Y14, x, x;   \
	VMULPS x, Y15, tmp; \
	VMAXPS tmp, x, x

// func depthwiseRowAVX2(dst, src *float32, nvec int, offs *int, k *float32, taps int, bias, slope float32)
TEXT ·depthwiseRowAVX2(SB), NOSPLIT, $0-56
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         nvec+16(FP), CX
	MOVQ         offs+24(FP), R8
	MOVQ         k+32(FP), R9
	MOVQ         taps+40(FP), R10
	VBROADCASTSS bias+48(FP), Y14
	VBROADCASTSS slope+52(FP), Y15

loop4:
	CMPQ   CX, $4
	JLT    loop1
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ   R10, R11
	MOVQ   R8, R12
	MOVQ   R9, R13

tap4:
	MOVQ         (R12), AX
	VBROADCASTSS (R13), Y4
	LEAQ         (SI)(AX*4), BX
	VFMADD231PS  (BX), Y4, Y0
	VFMADD231PS  32(BX), Y4, Y1
	VFMADD231PS  64(BX), Y4, Y2
	VFMADD231PS  96(BX), Y4, Y3
	ADDQ         $8, R12
	ADDQ         $4, R13
	DECQ         R11
	JNZ          tap4

	ACT(Y0, Y5)
	ACT(Y1, Y6)
	ACT(Y2, Y7)
	ACT(Y3, Y8)
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ    $128, DI
	ADDQ    $128, SI
	SUBQ    $4, CX
	JMP     loop4

loop1:
	TESTQ  CX, CX
	JZ     done
	VXORPS Y0, Y0, Y0
	MOVQ   R10, R11
	MOVQ   R8, R12
	MOVQ   R9, R13

tap1:
	MOVQ         (R12), AX
	VBROADCASTSS (R13), Y4
	VFMADD231PS  (SI)(AX*4), Y4, Y0
	ADDQ         $8, R12
	ADDQ         $4, R13
	DECQ         R11
	JNZ          tap1

	ACT(Y0, Y5)
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	DECQ    CX
	JMP     loop1

done:
	VZEROUPPER
	RET
