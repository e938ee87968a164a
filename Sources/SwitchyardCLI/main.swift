import Server

await SwitchyardCommand.runMain()
