module diffcoll.dev/examples

go 1.18

require diffcoll.dev/diffcoll v0.0.0

replace diffcoll.dev/diffcoll => ../../bindings/go
