print("detour")
