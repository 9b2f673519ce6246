module diffcoll.dev/diffcoll

go 1.18
