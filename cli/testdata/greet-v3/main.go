// Command greet (test version) has a broken manifest: it is not a
// Switchyard function at all.
package main

import "fmt"

func main() { fmt.Println("not a function") }
