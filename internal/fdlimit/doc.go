// Package fdlimit reads the open-file limit, so that the HTTP gateway and
// the embedded NATS server can cap their connections below it and a flood
// of idle connections never takes the descriptors JetStream needs.
package fdlimit
