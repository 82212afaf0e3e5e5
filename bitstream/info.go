package bitstream

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// Info is a .bit file at a glance: its header, payload and checksums (what
// `pynqctl bit info` prints, also its --json schema).
type Info struct {
	File          string `json:"file"`
	Design        string `json:"design"`
	DesignField   string `json:"design_field"`
	UserID        string `json:"user_id"`
	Version       string `json:"version"`
	Part          string `json:"part"`
	PartIsPYNQZ2  bool   `json:"part_is_pynq_z2"`
	Date          string `json:"date"`
	Time          string `json:"time"`
	PayloadOffset int64  `json:"payload_offset"`
	PayloadBytes  int64  `json:"payload_bytes"`
	FileSHA256    string `json:"file_sha256"`
	PayloadSHA256 string `json:"payload_sha256"`
}

// ReadInfo reads the .bit file path in one pass, hashing the whole file and the payload.
func ReadInfo(path string) (*Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	fileHash, payloadHash := sha256.New(), sha256.New()
	r := io.TeeReader(bufio.NewReaderSize(f, 64<<10), fileHash)
	h, err := Decode(r, fi.Size(), payloadHash)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Info{
		File:          path,
		Design:        h.DesignName,
		DesignField:   h.Design,
		UserID:        h.UserID,
		Version:       h.Version,
		Part:          h.Part,
		PartIsPYNQZ2:  h.Part == PartPYNQZ2,
		Date:          h.Date,
		Time:          h.Time,
		PayloadOffset: h.PayloadOffset,
		PayloadBytes:  h.PayloadLen,
		FileSHA256:    hex.EncodeToString(fileHash.Sum(nil)),
		PayloadSHA256: hex.EncodeToString(payloadHash.Sum(nil)),
	}, nil
}
