//go:build !unix

package activate

import (
	"context"
	"errors"
	"time"
)

func lockFile(context.Context, string, time.Duration) (func(), error) {
	return nil, errors.New("activation needs flock: only Unix boards are supported")
}
