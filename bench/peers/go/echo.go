// Command echo is the Go peer for netloop-bench: a goroutine per connection
// with a blocking read/write loop, as the net package documentation teaches.
//
// It deliberately does not use io.Copy(c, c): on Linux that splices through a
// pipe pair held per connection (3 fds per connection), which caps the idle
// test at about a third of the fd limit and adds two splice calls per read.
//
// Contract: --addr HOST:PORT, prints "listening on HOST:PORT" once bound,
// exits on SIGTERM/SIGINT.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	flag.Parse()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo-go:", err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", ln.Addr())

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		os.Exit(0)
	}()

	for {
		conn, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "echo-go: accept:", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go echo(conn)
	}
}

func echo(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 8192)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
