// Command dittonode runs an edge digital-twin node that speaks the Eclipse
// Ditto API.
//
//	dittonode run [--data DIR] [--http HOST:PORT] [--user NAME:PASSWORD]... [--dev] [--config FILE]
//	dittonode version
//
// It only turns flags, environment and a config file into a node.Config and
// runs node.Node; everything else lives in the packages below it.
package main
