package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"

	"github.com/hashicorp/hcl/hcl/ast"
	hclparser "github.com/hashicorp/hcl/hcl/parser"
	hclstrconv "github.com/hashicorp/hcl/hcl/strconv"
	"github.com/hashicorp/hcl/hcl/token"
)

// maxNesting bounds how deep a config file's objects and lists may nest;
// Consul's config is a few levels deep, and a bound keeps a hostile file from
// exhausting the stack in our own recursion.
const maxNesting = 64

// tree is one parsed config file: a generic value tree (maps with string
// keys, []any lists, string, int64, float64, json.Number, bool) and the line
// on which each path starts, paths spelled as in the file ("services[1].port";
// a key repeated as blocks becomes a list).
type tree struct {
	root  map[string]any
	lines map[string]int
}

// lineError is a problem found while parsing, at a line.
type lineError struct {
	line int
	err  error
}

func (e *lineError) Error() string { return fmt.Sprintf("line %d: %v", e.line, e.err) }
func (e *lineError) Unwrap() error { return e.err }

func syntaxErr(line int, format string, args ...any) error {
	return &lineError{line: line, err: &FieldError{Err: fmt.Errorf("%w: %s", ErrSyntax, fmt.Sprintf(format, args...))}}
}

// lineOf looks up the line of a path, falling back to its closest ancestor
// that has one; 0 if none does.
func (t *tree) lineOf(path string) int {
	for p := path; ; {
		if l, ok := t.lines[p]; ok {
			return l
		}
		if p == "" {
			return 0
		}
		p, _ = splitLastComponent(p)
	}
}

// parseHCL parses HCL v1 with hashicorp/hcl's parser and converts the AST
// itself (rather than with hcl.DecodeObject) so that every path keeps its line.
//
// Converting the AST ourselves means doing without hcl's decoder, which guards
// token.Value: that panics on literals the scanner lets through ("1e", an
// integer beyond int64), so hclLiteral parses them itself. The parser is not
// known to panic (FuzzParseFile found nothing in a few million inputs), but it
// is old, unmaintained code and a config file must never crash the agent, so
// a panic anywhere in parsing is recovered and reported as a syntax error
// naming the file. The inputs that reach token.Value's panics are kept in
// testdata/fuzz/FuzzParseFile.
func parseHCL(data []byte) (t *tree, err error) {
	defer func() {
		if r := recover(); r != nil {
			t, err = nil, syntaxErr(0, "HCL parser failed: %v", r)
		}
	}()
	if line := hclTooDeep(data); line > 0 {
		return nil, syntaxErr(line, "nested more than %d levels", maxNesting)
	}
	f, err := hclparser.Parse(data)
	if err != nil {
		var pe *hclparser.PosError
		if errors.As(err, &pe) {
			return nil, syntaxErr(pe.Pos.Line, "%s", shorten(pe.Err.Error()))
		}
		return nil, syntaxErr(0, "%s", shorten(err.Error()))
	}
	list, ok := f.Node.(*ast.ObjectList)
	if !ok {
		return nil, syntaxErr(0, "expected a list of settings")
	}
	c := &hclConv{lines: map[string]int{"": 1}}
	root, err := c.objectList(list, "", 0)
	if err != nil {
		return nil, err
	}
	return &tree{root: root, lines: c.lines}, nil
}

// hclTooDeep returns the line at which brackets outside strings and comments
// nest deeper than maxNesting, or 0. It runs before hcl's parser, which
// recurses per level and, on a syntax error, wraps the error message once per
// level: quadratic time and memory on "[[[[...". Heredocs are not recognised,
// so brackets in one count; a real config is nowhere near the limit.
func hclTooDeep(data []byte) int {
	depth, line := 0, 1
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '\n':
			line++
		case '"':
			for i++; i < len(data) && data[i] != '"' && data[i] != '\n'; i++ {
				if data[i] == '\\' {
					i++
				}
			}
			if i < len(data) && data[i] == '\n' {
				line++
			}
		case '#':
			for i < len(data) && data[i] != '\n' {
				i++
			}
			line++
		case '/':
			switch {
			case i+1 < len(data) && data[i+1] == '/':
				for i < len(data) && data[i] != '\n' {
					i++
				}
				line++
			case i+1 < len(data) && data[i+1] == '*':
				for i += 2; i+1 < len(data) && !(data[i] == '*' && data[i+1] == '/'); i++ {
					if data[i] == '\n' {
						line++
					}
				}
				i++
			}
		case '[', '{':
			if depth++; depth > maxNesting {
				return line
			}
		case ']', '}':
			depth--
		}
	}
	return 0
}

// shorten caps a parser message: hcl's messages nest one "error while
// parsing" per level and can grow long.
func shorten(msg string) string {
	const max = 200
	if len(msg) <= max {
		return msg
	}
	return msg[:max] + "..."
}

type hclConv struct {
	lines map[string]int
}

// objectList converts the items of an HCL body or object. A key given once
// maps to its value. A key repeated as blocks (`services { } services { }`,
// or blocks mixed with `services = [{...}]`) maps to the list of all of them,
// in order. A key repeated as plain values keeps the last, as a JSON decoder
// would.
func (c *hclConv) objectList(list *ast.ObjectList, path string, depth int) (map[string]any, error) {
	out := make(map[string]any)
	if list == nil {
		return out, nil
	}
	if depth > maxNesting {
		return nil, syntaxErr(0, "nested more than %d levels", maxNesting)
	}
	type group struct {
		key   string
		items []*ast.ObjectItem
	}
	var groups []*group
	byKey := make(map[string]*group)
	for _, item := range list.Items {
		if len(item.Keys) == 0 {
			return nil, syntaxErr(item.Val.Pos().Line, "value without a key")
		}
		key, err := hclKey(item.Keys[0])
		if err != nil {
			return nil, err
		}
		g := byKey[key]
		if g == nil {
			g = &group{key: key}
			byKey[key] = g
			groups = append(groups, g)
		}
		g.items = append(g.items, item)
	}
	for _, g := range groups {
		p := joinPath(path, g.key)
		c.lines[p] = g.items[0].Keys[0].Pos().Line
		if len(g.items) == 1 || !allBlocks(g.items) {
			last := g.items[len(g.items)-1]
			c.lines[p] = last.Keys[0].Pos().Line
			v, err := c.item(last, p, depth)
			if err != nil {
				return nil, err
			}
			out[g.key] = v
			continue
		}
		var blocks []any
		for _, item := range g.items {
			if lt, ok := item.Val.(*ast.ListType); ok && len(item.Keys) == 1 {
				for _, el := range lt.List {
					ep := p + "[" + strconv.Itoa(len(blocks)) + "]"
					c.lines[ep] = el.Pos().Line
					v, err := c.value(el, ep, depth+1)
					if err != nil {
						return nil, err
					}
					blocks = append(blocks, v)
				}
				continue
			}
			ep := p + "[" + strconv.Itoa(len(blocks)) + "]"
			c.lines[ep] = item.Keys[0].Pos().Line
			v, err := c.item(item, ep, depth)
			if err != nil {
				return nil, err
			}
			blocks = append(blocks, v)
		}
		out[g.key] = blocks
	}
	return out, nil
}

// allBlocks reports whether every item is an object: a block, a labelled
// block, or a list of objects.
func allBlocks(items []*ast.ObjectItem) bool {
	for _, item := range items {
		if len(item.Keys) > 1 {
			continue
		}
		switch v := item.Val.(type) {
		case *ast.ObjectType:
		case *ast.ListType:
			for _, el := range v.List {
				if _, ok := el.(*ast.ObjectType); !ok {
					return false
				}
			}
		default:
			return false
		}
	}
	return true
}

// item converts one item's value, nesting it under the item's further keys
// (`service "web" { }` is {"service": {"web": {...}}}, as HCL decodes it).
func (c *hclConv) item(item *ast.ObjectItem, path string, depth int) (any, error) {
	names := make([]string, 0, len(item.Keys)-1)
	p := path
	for _, k := range item.Keys[1:] {
		name, err := hclKey(k)
		if err != nil {
			return nil, err
		}
		p = joinPath(p, name)
		c.lines[p] = k.Pos().Line
		names = append(names, name)
	}
	v, err := c.value(item.Val, p, depth+1+len(names))
	if err != nil {
		return nil, err
	}
	for i := len(names) - 1; i >= 0; i-- {
		v = map[string]any{names[i]: v}
	}
	return v, nil
}

func (c *hclConv) value(n ast.Node, path string, depth int) (any, error) {
	if depth > maxNesting {
		return nil, syntaxErr(n.Pos().Line, "nested more than %d levels", maxNesting)
	}
	switch n := n.(type) {
	case *ast.LiteralType:
		return hclLiteral(n.Token)
	case *ast.ListType:
		out := make([]any, 0, len(n.List))
		for i, el := range n.List {
			ep := path + "[" + strconv.Itoa(i) + "]"
			c.lines[ep] = el.Pos().Line
			v, err := c.value(el, ep, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case *ast.ObjectType:
		return c.objectList(n.List, path, depth)
	}
	return nil, syntaxErr(n.Pos().Line, "unexpected %T", n)
}

// hclKey returns a key's name, unquoting a quoted key.
func hclKey(k *ast.ObjectKey) (string, error) {
	switch k.Token.Type {
	case token.IDENT:
		return k.Token.Text, nil
	case token.STRING:
		s, err := hclstrconv.Unquote(k.Token.Text)
		if err != nil {
			return "", syntaxErr(k.Pos().Line, "invalid quoted key %s", k.Token.Text)
		}
		return s, nil
	}
	return "", syntaxErr(k.Pos().Line, "invalid key %s", k.Token.Text)
}

// hclLiteral converts a literal token. It does what token.Value does but
// returns errors where that panics (an integer too large for int64, a string
// whose escapes hcl's scanner accepted and its unquoter rejects).
func hclLiteral(tok token.Token) (any, error) {
	switch tok.Type {
	case token.BOOL:
		switch tok.Text {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	case token.NUMBER:
		n, err := strconv.ParseInt(tok.Text, 0, 64)
		if err != nil {
			return nil, syntaxErr(tok.Pos.Line, "invalid number %s", tok.Text)
		}
		return n, nil
	case token.FLOAT:
		f, err := strconv.ParseFloat(tok.Text, 64)
		if err != nil {
			return nil, syntaxErr(tok.Pos.Line, "invalid number %s", tok.Text)
		}
		return f, nil
	case token.STRING:
		s, err := hclstrconv.Unquote(tok.Text)
		if err != nil {
			return nil, syntaxErr(tok.Pos.Line, "invalid string %s", tok.Text)
		}
		return s, nil
	case token.HEREDOC:
		return heredoc(tok)
	}
	return nil, syntaxErr(tok.Pos.Line, "unexpected %s", tok.Text)
}

// heredoc decodes a heredoc through token.Value (the unindenting logic is not
// exported), turning its panics on malformed heredocs into errors.
func heredoc(tok token.Token) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, syntaxErr(tok.Pos.Line, "invalid heredoc")
		}
	}()
	s, ok := tok.Value().(string)
	if !ok {
		return nil, syntaxErr(tok.Pos.Line, "invalid heredoc")
	}
	return s, nil
}

// parseJSON parses a JSON config file.
//
// It uses encoding/json's tokenizer, not hcl's JSON parser: hcl's JSON parser
// flattens objects whose members are all objects into multi-key items, so
// {"service": {"check": {...}, "weights": {...}}} comes back as two "service"
// items and cannot be told from two service blocks. Consul also decodes JSON
// config with encoding/json. The token stream gives each key's offset, hence
// its line.
func parseJSON(data []byte) (*tree, error) {
	c := &jsonConv{
		dec:   json.NewDecoder(bytes.NewReader(data)),
		lines: map[string]int{"": 1},
	}
	for i, b := range data {
		if b == '\n' {
			c.newlines = append(c.newlines, i)
		}
	}
	c.dec.UseNumber()
	tok, err := c.dec.Token()
	if errors.Is(err, io.EOF) {
		return &tree{root: map[string]any{}, lines: c.lines}, nil // an empty file sets nothing
	}
	if err != nil {
		return nil, c.syntax(err)
	}
	if tok != json.Delim('{') {
		return nil, syntaxErr(c.line(), "expected a JSON object at the top level")
	}
	root, err := c.object("", 0)
	if err != nil {
		return nil, err
	}
	if _, err := c.dec.Token(); !errors.Is(err, io.EOF) {
		return nil, syntaxErr(c.line(), "data after the top-level object")
	}
	return &tree{root: root, lines: c.lines}, nil
}

type jsonConv struct {
	dec      *json.Decoder
	newlines []int // offsets of '\n', to turn offsets into lines
	lines    map[string]int
}

// line is the line of the last byte the decoder consumed.
func (c *jsonConv) line() int {
	return c.lineAt(int(c.dec.InputOffset()) - 1)
}

func (c *jsonConv) lineAt(off int) int {
	return sort.SearchInts(c.newlines, off) + 1
}

func (c *jsonConv) syntax(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return syntaxErr(c.lineAt(int(se.Offset)-1), "%s", jsonErrText(err))
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return syntaxErr(c.line(), "unexpected end of JSON input")
	}
	return syntaxErr(c.line(), "%s", jsonErrText(err))
}

// object reads an object's members after its '{'. A key given twice keeps
// the last value, as encoding/json does.
func (c *jsonConv) object(path string, depth int) (map[string]any, error) {
	if depth > maxNesting {
		return nil, syntaxErr(c.line(), "nested more than %d levels", maxNesting)
	}
	out := make(map[string]any)
	for c.dec.More() {
		tok, err := c.dec.Token()
		if err != nil {
			return nil, c.syntax(err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, syntaxErr(c.line(), "expected a key")
		}
		p := joinPath(path, key)
		c.lines[p] = c.line()
		v, err := c.value(p, false, depth+1)
		if err != nil {
			return nil, err
		}
		out[key] = v
	}
	if _, err := c.dec.Token(); err != nil { // '}'
		return nil, c.syntax(err)
	}
	return out, nil
}

// value reads one value; mark records its line (list elements: object
// members are marked at their key).
func (c *jsonConv) value(path string, mark bool, depth int) (any, error) {
	tok, err := c.dec.Token()
	if err != nil {
		return nil, c.syntax(err)
	}
	if mark {
		c.lines[path] = c.line()
	}
	switch tok {
	case json.Delim('{'):
		return c.object(path, depth)
	case json.Delim('['):
		if depth > maxNesting {
			return nil, syntaxErr(c.line(), "nested more than %d levels", maxNesting)
		}
		out := []any{}
		for c.dec.More() {
			v, err := c.value(path+"["+strconv.Itoa(len(out))+"]", true, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		if _, err := c.dec.Token(); err != nil { // ']'
			return nil, c.syntax(err)
		}
		return out, nil
	}
	return tok, nil
}
