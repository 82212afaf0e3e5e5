package bitstream

import (
	"errors"
	"fmt"
	"io"
)

// ErrNoSyncWord means the converted data lacks the configuration sync word; the Zynq
// FPGA manager driver would refuse it ("could not find a sync word").
var ErrNoSyncWord = errors.New(`no sync word 66 55 99 aa on a 4-byte boundary (the kernel would say "could not find a sync word")`)

// chunkSize is the streaming buffer of ToBin: a multiple of 4 (so every word, and the
// sync word, lies inside one chunk) small enough to stay in the A9's 512 KiB L2.
const chunkSize = 64 << 10

// FindSyncWord returns the offset of the first sync word 66 55 99 AA on a 4-byte
// boundary of bin (already byte-swapped), or -1.
func FindSyncWord(bin []byte) int {
	for i := 0; i+4 <= len(bin); i += 4 {
		if bin[i] == 0x66 && bin[i+1] == 0x55 && bin[i+2] == 0x99 && bin[i+3] == 0xaa {
			return i
		}
	}
	return -1
}

// ToBin streams the .bit file in r to w as a .bin for the Zynq FPGA manager: the
// configuration data with every 32-bit word byte-swapped. size is the file size when known,
// or -1. w may have received data when ToBin fails (write to a temporary file and rename).
//
// ToBin does not check the part: see ConvertFile, or call CheckPart on the header.
func ToBin(w io.Writer, r io.Reader, size int64) (*Header, error) {
	return toBin(w, r, size, nil)
}

// toBin is ToBin with a check of the header before any payload byte is written.
func toBin(w io.Writer, r io.Reader, size int64, check func(*Header) error) (*Header, error) {
	h, err := ReadHeader(r)
	if err != nil {
		return nil, err
	}
	if err := h.checkSize(size); err != nil {
		return nil, err
	}
	if check != nil {
		if err := check(h); err != nil {
			return nil, err
		}
	}
	if h.PayloadLen%4 != 0 {
		return nil, &FieldError{"e (configuration data) length", h.PayloadOffset - 4,
			fmt.Errorf("%w: %d bytes is not a whole number of 32-bit words", ErrBadLength, h.PayloadLen)}
	}
	if err := copySwapped(w, r, h); err != nil {
		return nil, err
	}
	if err := expectEOF(r, h.PayloadOffset+h.PayloadLen); err != nil {
		return nil, err
	}
	return h, nil
}

func copySwapped(w io.Writer, r io.Reader, h *Header) error {
	buf := make([]byte, chunkSize)
	synced := false
	for done := int64(0); done < h.PayloadLen; {
		n := int(min(int64(len(buf)), h.PayloadLen-done))
		got, err := io.ReadFull(r, buf[:n])
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return &FieldError{"e (configuration data)", h.PayloadOffset + done + int64(got),
					fmt.Errorf("%w: got %d of %d bytes", ErrTruncated, done+int64(got), h.PayloadLen)}
			}
			return fmt.Errorf("read configuration data: %w", err)
		}
		SwapWords(buf[:n])
		if !synced {
			synced = FindSyncWord(buf[:n]) >= 0
		}
		if _, err := w.Write(buf[:n]); err != nil {
			return fmt.Errorf("write .bin: %w", err)
		}
		done += int64(n)
	}
	if !synced {
		return fmt.Errorf("convert %d bytes of configuration data: %w", h.PayloadLen, ErrNoSyncWord)
	}
	return nil
}

// BinFromPayload returns a byte-swapped copy of a .bit payload, checking its length and
// sync word like ToBin.
func BinFromPayload(payload []byte) ([]byte, error) {
	if len(payload)%4 != 0 {
		return nil, fmt.Errorf("configuration data: %w: %d bytes is not a whole number of 32-bit words", ErrBadLength, len(payload))
	}
	bin := append([]byte(nil), payload...)
	SwapWords(bin)
	if FindSyncWord(bin) < 0 {
		return nil, ErrNoSyncWord
	}
	return bin, nil
}
