package net

import "time"

func Dial(addr string, timeout time.Duration) (*Conn, error) {
	return nil, nil
}
