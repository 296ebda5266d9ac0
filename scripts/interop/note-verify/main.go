// Command note-verify checks a signed note with golang.org/x/mod/sumdb/note, the reference
// implementation of C2SP signed notes. Usage: note-verify <verifier-key> <note-file>.
// It prints the note text and exits 0 when the note verifies, or prints the error and exits 1.
package main

import (
	"fmt"
	"os"

	"golang.org/x/mod/sumdb/note"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: note-verify <verifier-key> <note-file>")
		os.Exit(2)
	}
	v, err := note.NewVerifier(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad verifier key:", err)
		os.Exit(1)
	}
	msg, err := os.ReadFile(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		fmt.Fprintln(os.Stderr, "note does not verify:", err)
		os.Exit(1)
	}
	fmt.Print(n.Text)
}
