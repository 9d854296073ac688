module github.com/libdsv3/libdsv3/bindings/go

go 1.19
