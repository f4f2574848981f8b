package playback

import (
	"fmt"
	"strconv"
)

func strconvInt(v string) (int64, error) {
	if v == "" {
		return 0, fmt.Errorf("missing")
	}
	return strconv.ParseInt(v, 10, 64)
}
