module local.invalid/pause

go 1.26.0
