"""The Emmett grammar: PLY (LALR) rules that build the syntax tree of `syntax.py`.

Binary operators use PLY precedence declarations over one ambiguous `expr`
rule rather than a chain of one nonterminal per C precedence level: the
tables are the same size but a leaf costs two reductions instead of fifteen,
which is most of the parser's time on large programs.

The rule functions are methods of `Grammar`; `parser.py` builds (or loads
cached) tables from them.  A `Grammar` instance holds the state of one parse:
the reporter for syntax errors, the typedef names the lexer must know, and
the token stream.
"""

from . import syntax as S
from .lexer import KEYWORDS, TOKENS, shown_literal


def _pos(p, i):
    return p.slice[i].pos


# The specifiers that name a type (the others are storage classes and qualifiers).
_TYPE_WORDS = frozenset("int long short char signed unsigned void string bag aggr int8 int16 int32 int64 "
                        "uint8 uint16 uint32 uint64 typename struct enum".split())


def _unterminated_definitions(specs):
    """The struct, union and enum definitions a declaration's specifiers start with when another
    type follows them (`struct a {...}  struct b {...};`: the toolkit's compiler takes a body's
    '}' as the end of its declaration): each becomes a declaration of its own, taken out of
    `specs`."""
    out = []
    while len(specs) > 1 and _is_definition(specs[0]) and any(s.word in _TYPE_WORDS for s in specs[1:]):
        definition = specs.pop(0)
        out.append(S.Declaration(definition.pos, [definition], [], definition.node.last))
    return out


def _declarators_and_widths(items):
    """A field declaration's declarators, and each one's bit-field width (None: not a bit-field)."""
    return [d for d, _ in items], [w for _, w in items]


def _is_definition(spec):
    node = spec.node
    return (isinstance(node, S.StructSpec) and node.fields is not None
            or isinstance(node, S.EnumSpec) and node.items is not None)


class Grammar:
    tokens = None  # lexer.TOKENS, set below
    start = "program"

    precedence = (
        ("nonassoc", "IFX"),
        ("nonassoc", "ELSE"),
        ("right", "=", "MULEQ", "DIVEQ", "MODEQ", "ADDEQ", "SUBEQ", "LSHIFTEQ", "RSHIFTEQ",
         "ANDEQ", "XOREQ", "OREQ", "LARROW"),
        ("right", "?", ":"),
        ("left", "OROR"),
        ("left", "ANDAND"),
        ("left", "|"),
        ("left", "^"),
        ("left", "&"),
        ("left", "EQ", "NE"),
        ("left", "<", ">", "LE", "GE"),
        ("left", "LSHIFT", "RSHIFT"),
        ("left", "+", "-"),
        ("left", "*", "/", "%"),
        ("right", "UNARY"),
        ("left", "[", "(", ".", "ARROW", "INC", "DEC"),
        ("nonassoc", "SIZEOF_TYPE"),
    )

    def __init__(self, reporter=None, typedefs=None, stream=None):
        self.reporter = reporter
        self.typedefs = typedefs if typedefs is not None else set()
        self.stream = stream
        self.parser = None

    # ---- program ---------------------------------------------------------------

    def p_program(self, p):
        """program : external_list"""
        p[0] = p[1]

    def p_external_list_empty(self, p):
        """external_list :"""
        p[0] = []

    def p_external_list(self, p):
        """external_list : external_list external"""
        if isinstance(p[2], list):
            p[1].extend(p[2])
        elif p[2] is not None:
            p[1].append(p[2])
        p[0] = p[1]

    def p_external(self, p):
        """external : declaration
                    | function_def
                    | probe_def
                    | memmodel_decl"""
        p[0] = p[1]
        if isinstance(p[1], (S.Declaration, S.FuncDef)):
            definitions = _unterminated_definitions(p[1].specs)
            if definitions:
                p[1].pos = p[1].specs[0].pos
                p[0] = definitions + [p[1]]

    def p_external_empty(self, p):
        """external : ';'"""
        p[0] = None

    def p_external_error(self, p):
        """external : error ';'
                    | error '}'"""
        p[0] = None

    def p_external_header(self, p):
        """external : HEADER"""
        name, value = p[1]
        p[0] = S.Header(_pos(p, 1), name, value)

    def p_memmodel(self, p):
        """memmodel_decl : MEMMODEL ID ';'"""
        p[0] = S.MemModel(_pos(p, 1), p[2], _pos(p, 2), _pos(p, 3))

    # ---- declarations ------------------------------------------------------------

    def p_declaration(self, p):
        """declaration : decl_specs init_declarators ';'"""
        specs = p[1]
        items = p[2]
        for s in specs:
            if s.word == "typedef":
                for d, _ in items:
                    if d.name is not None:
                        self.typedefs.add(d.name)
                break
        p[0] = S.Declaration(specs[0].pos, specs, items, _pos(p, 3))

    def p_declaration_bare(self, p):
        """declaration : decl_specs ';'"""
        p[0] = S.Declaration(p[1][0].pos, p[1], [], _pos(p, 2))

    def p_decl_specs_one(self, p):
        """decl_specs : decl_spec"""
        p[0] = [p[1]]

    def p_decl_specs_more(self, p):
        """decl_specs : decl_specs decl_spec"""
        p[1].append(p[2])
        p[0] = p[1]

    def p_decl_spec_word(self, p):
        """decl_spec : INT
                     | LONG
                     | SHORT
                     | CHAR
                     | SIGNED
                     | UNSIGNED
                     | VOID
                     | STRING
                     | BAG
                     | AGGR
                     | INT8
                     | INT16
                     | INT32
                     | INT64
                     | UINT8
                     | UINT16
                     | UINT32
                     | UINT64
                     | TYPEDEF
                     | PERTHREAD
                     | PERVM
                     | PERVMK
                     | PERHOST
                     | EXTERN
                     | STATIC
                     | CONST
                     | VOLATILE
                     | AUTO
                     | REGISTER
                     | INLINE"""
        p[0] = S.Spec(_pos(p, 1), p[1])

    def p_decl_spec_typename(self, p):
        """decl_spec : TYPE_NAME"""
        p[0] = S.Spec(_pos(p, 1), "typename", p[1])

    def p_decl_spec_struct(self, p):
        """decl_spec : struct_spec
                     | enum_spec"""
        p[0] = S.Spec(p[1].pos, "struct" if isinstance(p[1], S.StructSpec) else "enum", p[1])

    def p_init_declarators_one(self, p):
        """init_declarators : init_declarator"""
        p[0] = [p[1]]

    def p_init_declarators_more(self, p):
        """init_declarators : init_declarators ',' init_declarator"""
        p[1].append(p[3])
        p[0] = p[1]

    def p_init_declarator(self, p):
        """init_declarator : declarator"""
        p[0] = (p[1], None)

    def p_init_declarator_init(self, p):
        """init_declarator : declarator '=' expr"""
        p[0] = (p[1], p[3])

    def p_declarator_ptr(self, p):
        """declarator : pointer direct_declarator"""
        d = p[2]
        d.ops = p[1] + d.ops
        p[0] = d

    def p_declarator(self, p):
        """declarator : direct_declarator"""
        p[0] = p[1]

    def p_pointer_one(self, p):
        """pointer : '*'"""
        p[0] = [("ptr",)]

    def p_pointer_more(self, p):
        """pointer : pointer '*'"""
        p[1].append(("ptr",))
        p[0] = p[1]

    def p_pointer_qualified(self, p):
        """pointer : pointer CONST
                   | pointer VOLATILE"""
        p[0] = p[1]

    def p_direct_declarator_id(self, p):
        """direct_declarator : ID"""
        p[0] = S.Declarator(_pos(p, 1), p[1], [])

    def p_direct_declarator_paren(self, p):
        """direct_declarator : '(' declarator ')'"""
        p[0] = p[2]

    def p_direct_declarator_array(self, p):
        """direct_declarator : direct_declarator '[' expr ']'"""
        d = p[1]
        d.ops = [("array", p[3], _pos(p, 2))] + d.ops
        p[0] = d

    def p_direct_declarator_array_open(self, p):
        """direct_declarator : direct_declarator '[' ']'"""
        d = p[1]
        d.ops = [("array", None, _pos(p, 2))] + d.ops
        p[0] = d

    def p_direct_declarator_func(self, p):
        """direct_declarator : direct_declarator '(' param_list ')'"""
        d = p[1]
        d.ops = [("func", p[3], _pos(p, 2))] + d.ops
        p[0] = d

    def p_direct_declarator_func_empty(self, p):
        """direct_declarator : direct_declarator '(' ')'"""
        d = p[1]
        d.ops = [("func", [], _pos(p, 2))] + d.ops
        p[0] = d

    def p_param_list_one(self, p):
        """param_list : param"""
        p[0] = [p[1]]

    def p_param_list_more(self, p):
        """param_list : param_list ',' param"""
        p[1].append(p[3])
        p[0] = p[1]

    def p_param_list_ellipsis(self, p):
        """param_list : param_list ',' ELLIPSIS"""
        self.error(_pos(p, 3), "functions with a variable number of arguments ('...') are not supported")
        p[0] = p[1]

    def p_param(self, p):
        """param : decl_specs declarator"""
        p[0] = S.ParamDecl(p[1][0].pos, p[1], p[2])

    def p_param_abstract(self, p):
        """param : decl_specs abstract_declarator"""
        p[0] = S.ParamDecl(p[1][0].pos, p[1], p[2])

    def p_param_nameless(self, p):
        """param : decl_specs"""
        p[0] = S.ParamDecl(p[1][0].pos, p[1], S.Declarator(p[1][0].pos, None, []))

    def p_type_name(self, p):
        """type_name : decl_specs"""
        p[0] = S.TypeName(p[1][0].pos, p[1], S.Declarator(p[1][0].pos, None, []))

    def p_type_name_abstract(self, p):
        """type_name : decl_specs abstract_declarator"""
        p[0] = S.TypeName(p[1][0].pos, p[1], p[2])

    def p_abstract_declarator_ptr(self, p):
        """abstract_declarator : pointer"""
        p[0] = S.Declarator(None, None, p[1])

    def p_abstract_declarator_ptr_array(self, p):
        """abstract_declarator : pointer abstract_array"""
        p[0] = S.Declarator(None, None, p[1] + p[2])

    def p_abstract_declarator_array(self, p):
        """abstract_declarator : abstract_array"""
        p[0] = S.Declarator(None, None, p[1])

    def p_abstract_array_one(self, p):
        """abstract_array : '[' expr ']'"""
        p[0] = [("array", p[2], _pos(p, 1))]

    def p_abstract_array_more(self, p):
        """abstract_array : abstract_array '[' expr ']'"""
        p[0] = [("array", p[3], _pos(p, 2))] + p[1]

    # ---- struct, union, enum ------------------------------------------------------

    def p_struct_spec_full(self, p):
        """struct_spec : struct_or_union tag '{' field_list '}'"""
        p[0] = S.StructSpec(p[1][1], p[1][0], p[2], p[4], _pos(p, 5))

    def p_struct_spec_empty(self, p):
        """struct_spec : struct_or_union tag '{' '}'"""
        p[0] = S.StructSpec(p[1][1], p[1][0], p[2], [], _pos(p, 4))

    def p_struct_spec_anon(self, p):
        """struct_spec : struct_or_union '{' field_list '}'"""
        p[0] = S.StructSpec(p[1][1], p[1][0], None, p[3], _pos(p, 4))

    def p_struct_spec_ref(self, p):
        """struct_spec : struct_or_union tag"""
        p[0] = S.StructSpec(p[1][1], p[1][0], p[2], None)

    def p_struct_or_union(self, p):
        """struct_or_union : STRUCT
                           | UNION"""
        p[0] = (p[1], _pos(p, 1))

    def p_tag(self, p):
        """tag : ID
               | TYPE_NAME"""
        p[0] = p[1]

    def p_field_list_one(self, p):
        """field_list : field"""
        p[0] = [p[1]]

    def p_field_list_more(self, p):
        """field_list : field_list field"""
        p[1].append(p[2])
        p[0] = p[1]

    def p_field(self, p):
        """field : decl_specs field_declarators ';'"""
        p[0] = S.FieldDecl(p[1][0].pos, p[1], *_declarators_and_widths(p[2]), None, _pos(p, 3))

    def p_field_anonymous(self, p):
        """field : decl_specs ';'"""
        p[0] = S.FieldDecl(p[1][0].pos, p[1], [], [], None, _pos(p, 2))

    def p_field_at(self, p):
        """field : '@' at_value decl_specs field_declarators ';'"""
        p[0] = S.FieldDecl(_pos(p, 1), p[3], *_declarators_and_widths(p[4]), p[2], _pos(p, 5))

    def p_at_value(self, p):
        """at_value : INT_LIT"""
        value, text = p[1]
        p[0] = S.IntLit(_pos(p, 1), value, text)

    def p_at_value_name(self, p):
        """at_value : ID"""
        p[0] = S.Name(_pos(p, 1), p[1])

    def p_at_value_paren(self, p):
        """at_value : '(' expr ')'"""
        p[0] = p[2]

    def p_field_error(self, p):
        """field : error ';'"""
        p[0] = None

    def p_field_declarators_one(self, p):
        """field_declarators : field_declarator"""
        p[0] = [p[1]]

    def p_field_declarators_more(self, p):
        """field_declarators : field_declarators ',' field_declarator"""
        p[1].append(p[3])
        p[0] = p[1]

    def p_field_declarator(self, p):
        """field_declarator : declarator"""
        p[0] = (p[1], None)

    def p_field_declarator_bits(self, p):
        """field_declarator : declarator ':' at_value"""
        p[0] = (p[1], p[3])

    def p_field_declarator_padding(self, p):
        """field_declarator : ':' at_value"""
        p[0] = (S.Declarator(_pos(p, 1), None, []), p[2])

    def p_enum_spec_full(self, p):
        """enum_spec : ENUM tag '{' enum_list '}'
                     | ENUM tag '{' enum_list ',' '}'"""
        p[0] = S.EnumSpec(_pos(p, 1), p[2], p[4], _pos(p, len(p) - 1))

    def p_enum_spec_anon(self, p):
        """enum_spec : ENUM '{' enum_list '}'
                     | ENUM '{' enum_list ',' '}'"""
        p[0] = S.EnumSpec(_pos(p, 1), None, p[3], _pos(p, len(p) - 1))

    def p_enum_spec_ref(self, p):
        """enum_spec : ENUM tag"""
        p[0] = S.EnumSpec(_pos(p, 1), p[2], None)

    def p_enum_list_one(self, p):
        """enum_list : enumerator"""
        p[0] = [p[1]]

    def p_enum_list_more(self, p):
        """enum_list : enum_list ',' enumerator"""
        p[1].append(p[3])
        p[0] = p[1]

    def p_enumerator(self, p):
        """enumerator : ID"""
        p[0] = (p[1], None, _pos(p, 1))

    def p_enumerator_value(self, p):
        """enumerator : ID '=' expr"""
        p[0] = (p[1], p[3], _pos(p, 1))

    # ---- functions and probes -----------------------------------------------------------

    def p_function_def(self, p):
        """function_def : decl_specs declarator compound_stmt"""
        f = S.FuncDef(p[1][0].pos, p[1], p[2], p[3])
        p[0] = f

    def p_probe_def(self, p):
        """probe_def : probe_name statement"""
        p[0] = S.ProbeDef(p[1][0][2], p[1], None, p[2])

    def p_probe_def_params(self, p):
        """probe_def : probe_name '(' probe_params ')' statement"""
        p[0] = S.ProbeDef(p[1][0][2], p[1], p[3], p[5])

    def p_probe_def_noparams(self, p):
        """probe_def : probe_name '(' ')' statement"""
        p[0] = S.ProbeDef(p[1][0][2], p[1], [], p[4])

    def p_probe_name_one(self, p):
        """probe_name : ID"""
        p[0] = [(p[1], "ID", _pos(p, 1))]

    def p_probe_name_more(self, p):
        """probe_name : probe_name ':' probe_part"""
        p[1].append(p[3])
        p[0] = p[1]

    def p_probe_part_id(self, p):
        """probe_part : ID
                      | TYPE_NAME"""
        p[0] = (p[1], "ID", _pos(p, 1))

    def p_probe_part_number(self, p):
        """probe_part : INT_LIT"""
        p[0] = (p[1], "INT", _pos(p, 1))

    def p_probe_part_time(self, p):
        """probe_part : TIME_LIT"""
        p[0] = (p[1], "TIME", _pos(p, 1))

    def p_probe_params_one(self, p):
        """probe_params : probe_param"""
        p[0] = [p[1]]

    def p_probe_params_more(self, p):
        """probe_params : probe_params ',' probe_param"""
        p[1].append(p[3])
        p[0] = p[1]

    def p_probe_param(self, p):
        """probe_param : decl_specs declarator"""
        p[0] = S.ParamDecl(p[1][0].pos, p[1], p[2])

    # ---- statements --------------------------------------------------------------

    def p_compound(self, p):
        """compound_stmt : '{' block_items '}'"""
        p[0] = S.Block(_pos(p, 1), p[2], _pos(p, 3))

    def p_compound_empty(self, p):
        """compound_stmt : '{' '}'"""
        p[0] = S.Block(_pos(p, 1), [], _pos(p, 2))

    def p_block_items_one(self, p):
        """block_items : block_item"""
        p[0] = [p[1]] if p[1] is not None else []

    def p_block_items_more(self, p):
        """block_items : block_items block_item"""
        s = p.slice
        items = s[1].value
        if s[2].value is not None:
            items.append(s[2].value)
        s[0].value = items

    def p_block_item(self, p):
        """block_item : declaration
                      | statement"""
        p.slice[0].value = p.slice[1].value

    def p_statement(self, p):
        """statement : compound_stmt"""
        p[0] = p[1]

    def p_statement_expr(self, p):
        """statement : comma_expr ';'"""
        e = p.slice[1].value
        p.slice[0].value = S.ExprStmt(e.pos, e, p.slice[2].pos)

    def p_statement_empty(self, p):
        """statement : ';'"""
        p[0] = S.Empty(_pos(p, 1))

    def p_statement_if(self, p):
        """statement : IF '(' comma_expr ')' statement %prec IFX"""
        p[0] = S.If(_pos(p, 1), p[3], p[5], None)

    def p_statement_if_else(self, p):
        """statement : IF '(' comma_expr ')' statement ELSE statement"""
        p[0] = S.If(_pos(p, 1), p[3], p[5], p[7])

    def p_statement_return(self, p):
        """statement : RETURN comma_expr ';'"""
        p[0] = S.Return(_pos(p, 1), p[2], _pos(p, 3))

    def p_statement_return_void(self, p):
        """statement : RETURN ';'"""
        p[0] = S.Return(_pos(p, 1), None, _pos(p, 2))

    def p_statement_error(self, p):
        """statement : error ';'"""
        p[0] = None

    def p_statement_for(self, p):
        """statement : FOR '(' opt_comma_expr ';' opt_comma_expr ';' opt_comma_expr ')' statement"""
        p[0] = S.Loop(_pos(p, 1), "for", p[3], p[5], p[7], p[9])

    def p_statement_for_declaration(self, p):
        """statement : FOR '(' declaration opt_comma_expr ';' opt_comma_expr ')' statement"""
        p[0] = S.Loop(_pos(p, 1), "for", p[3], p[4], p[6], p[8])

    def p_statement_while(self, p):
        """statement : WHILE '(' comma_expr ')' statement"""
        p[0] = S.Loop(_pos(p, 1), "while", None, p[3], None, p[5])

    def p_statement_do_while(self, p):
        """statement : DO statement WHILE '(' comma_expr ')' ';'"""
        p[0] = S.Loop(_pos(p, 1), "do", None, p[5], None, p[2], _pos(p, 7))

    def p_statement_jump(self, p):
        """statement : BREAK ';'
                     | CONTINUE ';'"""
        p[0] = S.Jump(_pos(p, 1), p[1], _pos(p, 2))

    def p_statement_unsupported(self, p):
        """statement : SWITCH '(' expr ')' statement
                     | CASE expr ':' statement
                     | DEFAULT ':' statement
                     | GOTO ID ';'
                     | TRY compound_stmt CATCH compound_stmt"""
        p[0] = S.Unsupported(_pos(p, 1), p[1])

    def p_opt_comma_expr(self, p):
        """opt_comma_expr : comma_expr
                          |"""
        p[0] = p[1] if len(p) > 1 else None

    # ---- expressions ---------------------------------------------------------------

    def p_expr_binary(self, p):
        """expr : expr '+' expr
                | expr '-' expr
                | expr '*' expr
                | expr '/' expr
                | expr '%' expr
                | expr LSHIFT expr
                | expr RSHIFT expr
                | expr '<' expr
                | expr '>' expr
                | expr LE expr
                | expr GE expr
                | expr EQ expr
                | expr NE expr
                | expr '&' expr
                | expr '^' expr
                | expr '|' expr
                | expr ANDAND expr
                | expr OROR expr"""
        s = p.slice  # the hottest rules read the symbols directly (YaccProduction indexing is slow)
        s[0].value = S.Binary(s[2].pos, s[2].value, s[1].value, s[3].value)

    def p_expr_assign(self, p):
        """expr : expr '=' expr
                | expr MULEQ expr
                | expr DIVEQ expr
                | expr MODEQ expr
                | expr ADDEQ expr
                | expr SUBEQ expr
                | expr LSHIFTEQ expr
                | expr RSHIFTEQ expr
                | expr ANDEQ expr
                | expr XOREQ expr
                | expr OREQ expr
                | expr LARROW expr"""
        s = p.slice
        s[0].value = S.Assign(s[2].pos, s[2].value, s[1].value, s[3].value)

    def p_expr_conditional(self, p):
        """expr : expr '?' expr ':' expr"""
        p[0] = S.Conditional(_pos(p, 2), p[1], p[3], p[5])

    def p_expr_unary(self, p):
        """expr : '-' expr %prec UNARY
                | '+' expr %prec UNARY
                | '!' expr %prec UNARY
                | '~' expr %prec UNARY
                | '*' expr %prec UNARY
                | '&' expr %prec UNARY"""
        p[0] = S.Unary(_pos(p, 1), p[1], p[2])

    def p_expr_cast(self, p):
        """expr : '(' type_name ')' expr %prec UNARY"""
        p[0] = S.Cast(_pos(p, 1), p[2], p[4])

    def p_expr_preincdec(self, p):
        """expr : INC expr %prec UNARY
                | DEC expr %prec UNARY"""
        p[0] = S.IncDec(_pos(p, 1), p[1], True, p[2])

    def p_expr_sizeof(self, p):
        """expr : SIZEOF expr %prec UNARY"""
        p[0] = S.SizeOf(_pos(p, 1), None, p[2])

    def p_expr_sizeof_type(self, p):
        """expr : SIZEOF '(' type_name ')' %prec SIZEOF_TYPE"""
        p[0] = S.SizeOf(_pos(p, 1), p[3], None, _pos(p, 4))

    def p_expr_index(self, p):
        """expr : expr '[' expr_list ']'"""
        p[0] = S.Index(_pos(p, 2), p[1], p[3], _pos(p, 4))

    def p_expr_index_empty(self, p):
        """expr : expr '[' ']'"""
        p[0] = S.Index(_pos(p, 2), p[1], [], _pos(p, 3))

    def p_expr_call(self, p):
        """expr : expr '(' expr_list ')'"""
        p[0] = S.Call(p[1].pos, p[1], p[3], _pos(p, 4))

    def p_expr_call_empty(self, p):
        """expr : expr '(' ')'"""
        p[0] = S.Call(p[1].pos, p[1], [], _pos(p, 3))

    def p_expr_member(self, p):
        """expr : expr '.' ID
                | expr ARROW ID"""
        p[0] = S.Member(_pos(p, 2), p[1], p[3], p[2] == "->", _pos(p, 3))

    def p_expr_postincdec(self, p):
        """expr : expr INC
                | expr DEC"""
        p[0] = S.IncDec(_pos(p, 2), p[2], False, p[1])

    def p_primary_id(self, p):
        """expr : ID"""
        t = p.slice[1]
        p.slice[0].value = S.Name(t.pos, t.value)

    def p_primary_int(self, p):
        """expr : INT_LIT"""
        t = p.slice[1]
        value, text = t.value
        p.slice[0].value = S.IntLit(t.pos, value, text)

    def p_primary_string(self, p):
        """expr : strings"""
        p[0] = p[1]

    def p_strings_one(self, p):
        """strings : STRING_LIT"""
        p[0] = S.StrLit(_pos(p, 1), p[1])

    def p_strings_more(self, p):
        """strings : strings STRING_LIT"""
        p[1].value += p[2]
        p[1].last = _pos(p, 2)
        p[0] = p[1]

    def p_primary_paren(self, p):
        """expr : '(' comma_expr ')'"""
        p[0] = p[2]

    def p_comma_expr(self, p):
        """comma_expr : expr
                      | comma_expr ',' expr"""
        if len(p) == 2:
            p.slice[0].value = p.slice[1].value
        elif isinstance(p[1], S.Comma):
            p[1].exprs.append(p[3])
            p[0] = p[1]
        else:
            p[0] = S.Comma(p[1].pos, [p[1], p[3]])

    def p_expr_list_one(self, p):
        """expr_list : expr"""
        p[0] = [p[1]]

    def p_expr_list_more(self, p):
        """expr_list : expr_list ',' expr"""
        p[1].append(p[3])
        p[0] = p[1]

    # ---- errors ------------------------------------------------------------------------

    def error(self, pos, message):
        if self.reporter is not None:
            self.reporter.error(pos, message)

    def p_error(self, t):
        if self.reporter is None:
            return
        if t is None:
            pos = self.stream.last_pos if self.stream is not None else (0, 1, 1)
            self.reporter.error(pos, "syntax error: unexpected end of input" + self._expected())
            return
        shown = _describe(t)
        if self._can_insert_semicolon(t):
            # The commonest slip: a missing ';'.  Report it, insert one and
            # read on, so that the rest of the block still parses.
            self.reporter.error(t.pos, f"syntax error: expected ';' before {shown}")
            self.last_insert = t.pos
            self.stream.pending.append(t)
            self.parser.errok()
            semi = _semicolon(t)
            return semi
        self.reporter.error(t.pos, f"syntax error at {shown}" + self._expected(t))

    def _can_insert_semicolon(self, t):
        parser = self.parser
        if parser is None or self.stream is None or t.pos == getattr(self, "last_insert", None):
            return False
        try:
            actions = parser.action[parser.state]
        except (AttributeError, KeyError, IndexError):
            return False
        if ";" not in actions:
            return False
        prev = self.stream.prev_pos
        return t.type == "}" or (prev is not None and t.pos[1] > prev[1])

    def _expected(self, t=None):
        parser = self.parser
        if parser is None:
            return ""
        try:
            actions = parser.action[parser.state]
        except (AttributeError, KeyError, IndexError):
            return ""
        names = [k for k in actions if k != "error"]
        if 0 < len(names) <= 4:
            shown = sorted(_SHOW.get(n, f"'{n}'" if len(n) <= 3 else n.lower()) for n in names)
            return "; expected " + " or ".join(shown)
        if ";" in names:
            return " (is a ';' missing before it?)"
        return ""


_SHOW = {
    "ID": "a name", "TYPE_NAME": "a type name", "INT_LIT": "a number", "STRING_LIT": "a string",
    "TIME_LIT": "a time such as 10msec", "$end": "the end of the input", "ARROW": "'->'", "INC": "'++'",
    "DEC": "'--'", "LSHIFT": "'<<'", "RSHIFT": "'>>'", "LE": "'<='", "GE": "'>='", "EQ": "'=='",
    "NE": "'!='", "ANDAND": "'&&'", "OROR": "'||'", "LARROW": "'<-'", "ELLIPSIS": "'...'",
}


def _semicolon(t):
    from ply.lex import LexToken
    semi = LexToken()
    semi.type = ";"
    semi.value = ";"
    semi.lineno = t.lineno
    semi.lexpos = t.lexpos
    semi.pos = t.pos
    semi.hide = None
    return semi


def _describe(t):
    ty = t.type
    if ty in ("ID", "TYPE_NAME"):
        return f"'{shown_literal(t.value)}'"
    if ty == "INT_LIT" or ty == "TIME_LIT":
        return f"'{shown_literal(t.value[1])}'"
    if ty == "STRING_LIT":
        text = t.value if len(t.value) <= 20 else t.value[:17] + "..."
        return "string " + '"' + text.replace("\n", "\\n") + '"'
    if len(ty) == 1:
        return f"'{ty}'"
    if ty.lower() in KEYWORDS:
        return f"'{ty.lower()}'"
    return _SHOW.get(ty, ty)


Grammar.tokens = TOKENS
