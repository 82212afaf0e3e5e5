package bitstream

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

func TestReadInfo(t *testing.T) {
	data := defaultBit()
	path := writeTemp(t, "top.bit", data)
	i, err := ReadInfo(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if i.Design != "top" || i.UserID != "0X1234" || !i.PartIsPYNQZ2 || i.PayloadBytes != int64(len(testPayload())) ||
		i.FileSHA256 != hex.EncodeToString(sum[:]) || i.PayloadOffset+i.PayloadBytes != int64(len(data)) {
		t.Errorf("info %+v", i)
	}
	if _, err := ReadInfo(writeTemp(t, "short.bit", data[:20])); err == nil {
		t.Error("a truncated file reads")
	}
}
